from ivytui.cli import main

raise SystemExit(main())
