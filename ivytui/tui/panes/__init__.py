"""The panes of the main screen: one module per pane, each rendering from a HubView."""
