"""Small widgets that update in place: a line that repaints only when its text changes, a
list of labelled fields, a keyed table, and the stale marker of a pane."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from rich.style import Style as RichStyle
from rich.text import Text
from textual.color import Color
from textual.containers import Grid, Horizontal, Vertical
from textual.content import Content
from textual.markup import escape
from textual.style import Style
from textual.widget import Widget
from textual.widgets import DataTable, Label, Static

from ivytui.domain.model import PodInfo

PENDING = "[$text-muted]…[/]"


class Line(Static):
    """A Static that repaints only when the markup it is given differs from what it shows."""

    def __init__(
        self, markup: str = "", *, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(markup, id=id, classes=classes)
        self._markup = markup

    @property
    def markup_text(self) -> str:
        return self._markup

    def show(self, markup: str) -> bool:
        """Show ``markup``; returns whether anything changed."""
        if markup == self._markup:
            return False
        self._markup = markup
        self.update(markup)
        return True


def rich_text(markup: str, variables: Mapping[str, str]) -> Text:
    """Textual markup (with theme variables) as Rich Text, for widgets that measure and wrap
    Rich renderables (DataTable cells, RichLog lines).

    Colours come from the theme (``variables``); muted text is blended onto ``$surface``, the
    background of those widgets, since Rich has no translucent colours. Unstyled text keeps the
    widget's own colours (a table's cursor row, for one).
    """
    base = Style(
        background=Color.parse(variables.get("surface", "black")),
        foreground=Color.parse(variables.get("foreground", "white")),
    )
    content = Content.from_markup(markup.replace("$text-muted", "$foreground-muted"))
    text = Text(end="")
    for piece, style in content.render(base, end=""):
        if style == base:
            text.append(piece)
            continue
        rich = style.rich_style
        text.append(
            piece,
            RichStyle(
                color=rich.color,
                bold=rich.bold,
                italic=rich.italic,
                underline=rich.underline,
                strike=rich.strike,
                reverse=rich.reverse,
            ),
        )
    return text


class Field(Horizontal):
    """``label   value``: the label in a fixed column, the value wrapping beside it."""

    def __init__(self, key: str, label: str, *, label_width: int = 12) -> None:
        super().__init__(classes="field", id=f"field-{key}")
        self.key = key
        self.label = Label(label, classes="field-label")
        self.label.styles.width = label_width
        self.value = Line(PENDING, classes="field-value")

    def compose(self) -> Iterable[Widget]:
        yield self.label
        yield self.value

    @property
    def value_markup(self) -> str:
        return self.value.markup_text

    def set_value(self, value_markup: str) -> bool:
        return self.value.show(value_markup)


FieldSpec = tuple[str, str, bool]
"""``(key, label, wide)``: a wide field takes a whole line in the two-column layout."""


class FieldList(Vertical):
    """Fields in a fixed order. Runs of short fields sit in a grid (one column when the pane
    is narrow and tall, two at 80 columns); wide fields take a line of their own."""

    def __init__(
        self, specs: Sequence[FieldSpec], *, label_width: int = 12, id: str | None = None
    ) -> None:
        super().__init__(id=id, classes="fields")
        self._specs = tuple(specs)
        self._label_width = label_width
        self.fields: dict[str, Field] = {}

    def compose(self) -> Iterable[Widget]:
        run: list[Field] = []
        for key, label, wide in self._specs:
            f = Field(key, label, label_width=self._label_width)
            self.fields[key] = f
            if wide:
                if run:
                    yield Grid(*run, classes="field-grid")
                    run = []
                yield f
            else:
                run.append(f)
        if run:
            yield Grid(*run, classes="field-grid")

    def set_values(self, values: Mapping[str, str]) -> int:
        """Set each field's value markup; returns how many changed."""
        changed = 0
        for key, markup in values.items():
            f = self.fields.get(key)
            if f is not None and f.set_value(markup):
                changed += 1
        return changed

    def value(self, key: str) -> str:
        return self.fields[key].value_markup


class StaleLine(Line):
    """The pane's problem in words (``stale 10 s — connection refused``); hidden when fresh."""

    def __init__(self) -> None:
        super().__init__("", classes="stale")
        self.display = False

    def show_problems(self, lines: Sequence[str]) -> None:
        self.show("\n".join(lines))
        self.display = bool(lines)


def middle_ellipsis(text: str, width: int) -> str:
    """``hippo-backr…n9z-hhfgh``: keeps both ends of a name that does not fit."""
    if len(text) <= width:
        return text
    if width <= 4:
        return text[: max(width, 0)]
    keep = width - 1
    head = keep // 2
    return f"{text[:head]}…{text[len(text) - (keep - head) :]}"


class KeyedTable(DataTable[Text]):
    """A DataTable whose rows are kept by key and whose cells change only when they differ.

    Cells are given as Textual markup (theme variables allowed). The ``flex`` column (plain
    text, e.g. pod names) is shortened in the middle so the table fits its width.
    """

    def __init__(
        self, columns: Sequence[tuple[str, str]], *, flex: str | None = None, id: str | None = None
    ) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False, show_cursor=True)
        self._column_spec = tuple(columns)
        self._flex = [key for key, _ in columns].index(flex) if flex is not None else None
        self._rows: dict[str, tuple[str, ...]] = {}
        self._shown: dict[str, tuple[str, ...]] = {}
        for key, label in self._column_spec:
            self.add_column(label, key=key)

    @property
    def keys(self) -> list[str]:
        return list(self._shown)

    def sync(self, rows: Sequence[tuple[str, Sequence[str]]]) -> None:
        """Make the table hold exactly ``rows`` (key, cells): add, remove, update cells."""
        self._rows = {key: tuple(cells) for key, cells in rows}
        self._apply()

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, self._restyle)

    def _restyle(self, _theme: object) -> None:
        """Colours are resolved when cells are written: write them again in the new theme."""
        self.clear()
        self._shown.clear()
        self._apply()

    def on_resize(self) -> None:
        self._apply()

    def _flex_budget(self) -> int | None:
        width = self.size.width
        if self._flex is None or width <= 0 or not self._rows:
            return None
        pad = 2 * self.cell_padding
        used = 0
        for index, (_, label) in enumerate(self._column_spec):
            if index == self._flex:
                continue
            cells = [Content.from_markup(row[index]).cell_length for row in self._rows.values()]
            used += max([len(label), *cells]) + pad
        return max(width - used - pad - 1, 8)

    def _apply(self) -> None:
        budget = self._flex_budget()
        wanted: dict[str, tuple[str, ...]] = {}
        for key, cells in self._rows.items():
            if budget is not None and self._flex is not None:
                plain = Content.from_markup(cells[self._flex]).plain
                if len(plain) > budget:
                    cells = (
                        *cells[: self._flex],
                        escape(middle_ellipsis(plain, budget)),
                        *cells[self._flex + 1 :],
                    )
            wanted[key] = cells
        variables = self.app.theme_variables
        for key in [k for k in self._shown if k not in wanted]:
            self.remove_row(key)
            del self._shown[key]
        for key, new in wanted.items():
            old = self._shown.get(key)
            if old is None:
                self.add_row(*(rich_text(cell, variables) for cell in new), key=key)
            elif old != new:
                for (column, _), before, after in zip(self._column_spec, old, new, strict=True):
                    if before != after:
                        self.update_cell(
                            key, column, rich_text(after, variables), update_width=True
                        )
            self._shown[key] = new

    @property
    def selected_key(self) -> str | None:
        if not self._shown or self.cursor_row < 0 or self.cursor_row >= self.row_count:
            return None
        row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        return None if row_key.value is None else str(row_key.value)


def pod_rows(pods: Sequence[PodInfo]) -> list[tuple[str, Sequence[str]]]:
    """Rows for a pod table: database pods first, the primary on top."""
    ordered = sorted(pods, key=lambda p: (not p.is_database, not p.is_primary, p.name))
    rows: list[tuple[str, Sequence[str]]] = []
    for pod in ordered:
        kind = pod.kind if pod.kind in ("repo-host", "pgbouncer") else ""
        role = escape(pod.role or kind)
        if pod.is_primary:
            role = f"[$accent]{role}[/]"
        phase = escape(pod.phase) + (" (terminating)" if pod.deleting else "")
        if pod.phase != "Running" or pod.deleting:
            phase = f"[$warning]{phase}[/]"
        ready = "[$success]✓[/]" if pod.ready else "[$error]✗[/]"
        rows.append((pod.name, (escape(pod.name), role, phase, ready)))
    return rows


POD_COLUMNS = (("name", "pod"), ("role", "role"), ("phase", "phase"), ("ready", "ready"))
