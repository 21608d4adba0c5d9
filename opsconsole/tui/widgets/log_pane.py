"""The log tail that never freezes: renders only the visible lines (Textual's Line API).

It holds a bounded window of a job's log; scrolling to its top asks for older lines from
the store, so a 500,000-line log costs what the screen shows. While following, new lines
scroll into view; once the operator scrolls up it stops following and counts "N new lines"
instead of yanking the view. Text is shown as plain text, escape sequences stripped and
other unsafe characters shown escaped (``core.text.visible``).
"""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from opsconsole.core.text import visible
from opsconsole.core.views import LogLine

WINDOW = 100_000
"""Lines held in memory at most; the rest stays in the store."""
RENDER_MAX = 4000
"""Characters of one line drawn at most (a 10 MB line must not cost 10 MB per frame)."""
CONTEXT = 3

META = Style(dim=True, italic=True)
TRUNCATED = Style(reverse=True, bold=True)
ERR = Style(color="red")
MATCH = Style(reverse=True, color="yellow")


class LogView(ScrollView, can_focus=True):
    BINDINGS = [
        Binding("end", "follow", "Follow", show=False),
        Binding("home", "top", "Top", show=False),
        Binding("G", "follow", show=False),
        Binding("g", "top", show=False),
        Binding("pageup", "page(-1)", show=False),
        Binding("pagedown", "page(1)", show=False),
    ]

    following: reactive[bool] = reactive(True)
    new_lines: reactive[int] = reactive(0)

    class NeedOlder(Message):
        """The view reached the top of its window and the store has older lines."""

        def __init__(self, view: LogView, job_id: str, before: int) -> None:
            super().__init__()
            self.view = view
            self.job_id = job_id
            self.before = before

    class NeedTail(Message):
        def __init__(self, view: LogView, job_id: str) -> None:
            super().__init__()
            self.view = view
            self.job_id = job_id

    def __init__(self, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.job_id: str | None = None
        self.lines: list[LogLine] = []
        self._texts: list[str] = []
        self.has_older = False
        self.tail_dropped = False
        """True when the window was cut at its end (after scrolling far back)."""
        self._width = 0
        self._loading_older = False
        self.search_text: str = ""
        self.matches: list[int] = []
        """Line numbers (seq) that match ``query``, from the whole stored log."""
        self.match_at: int | None = None
        self.context_only = False
        self._shown: list[int] | None = None
        """With ``context_only``: indexes into ``lines`` that are shown."""

    # -- content ----------------------------------------------------------------------

    def clear_log(self) -> None:
        self.job_id = None
        self.lines, self._texts = [], []
        self.has_older = self.tail_dropped = False
        self.search_text, self.matches, self.match_at = "", [], None
        self._shown = None
        self.new_lines = 0
        self._width = 0
        self._resize_virtual()

    def load(self, job_id: str, lines: list[LogLine], *, has_older: bool) -> None:
        """Show ``lines`` (the tail of ``job_id``'s log) and follow it."""
        self.clear_log()
        self.job_id = job_id
        self.has_older = has_older
        self._set(lines)
        self.following = True
        self._scroll(None)

    def _set(self, lines: list[LogLine]) -> None:
        self.lines = lines
        self._texts = [self._prepare(ln) for ln in lines]
        self._width = max((len(t) for t in self._texts), default=0)
        self._recompute_shown()
        self._resize_virtual()

    @staticmethod
    def _prepare(line: LogLine) -> str:
        text = visible(line.text[:RENDER_MAX], strip_sequences=True).expandtabs(8)
        if len(line.text) > RENDER_MAX:
            text += f" … [{len(line.text) - RENDER_MAX} more characters]"
        return text

    def append(self, lines: list[LogLine]) -> None:
        if not lines or self.tail_dropped:
            if lines and self.tail_dropped:
                self.new_lines += len(lines)
            return
        last = self.lines[-1].seq if self.lines else 0
        lines = [ln for ln in lines if ln.seq > last]
        if not lines:
            return
        texts = [self._prepare(ln) for ln in lines]
        self.lines.extend(lines)
        self._texts.extend(texts)
        self._width = max(self._width, *(len(t) for t in texts))
        overflow = len(self.lines) - WINDOW
        if overflow > 0:
            del self.lines[:overflow]
            del self._texts[:overflow]
            self.has_older = True
            if not self.following:
                self._scroll(max(0, self.scroll_y - overflow))
        self._recompute_shown()
        self._resize_virtual()
        if self.following:
            self._scroll(None)
        else:
            self.new_lines += len(lines)

    def prepend(self, lines: list[LogLine], *, has_older: bool) -> None:
        self._loading_older = False
        self.has_older = has_older
        first = self.lines[0].seq if self.lines else None
        lines = [ln for ln in lines if first is None or ln.seq < first]
        if not lines:
            return
        self.lines[:0] = lines
        self._texts[:0] = [self._prepare(ln) for ln in lines]
        self._width = max(self._width, *(len(t) for t in self._texts[: len(lines)]))
        overflow = len(self.lines) - WINDOW
        if overflow > 0:
            del self.lines[-overflow:]
            del self._texts[-overflow:]
            self.tail_dropped = True
        self._recompute_shown()
        self._resize_virtual()
        if self._shown is None:
            self._scroll(self.scroll_y + len(lines))

    def _scroll(self, y: float | None) -> None:
        """Scroll at once to row ``y``, or to the end when None.

        Until the next layout shows the scrollbar for a new virtual size, Textual ignores
        scrolls that are not forced: a freshly loaded log would stay at its first line.
        """
        if y is None:
            self.scroll_end(animate=False, immediate=True, force=True)
        else:
            self.scroll_to(y=y, animate=False, immediate=True, force=True)

    def _resize_virtual(self) -> None:
        """The scrollable size after lines came or went.

        Setting ``virtual_size`` lays out the whole screen (it is a layout reactive), which
        on a loaded 2-core machine took a quarter of a second per log batch: five times a
        second under a chatty job. When the scrollbars stay as they are, only this view and
        its scrollbar are refreshed."""
        rows = len(self._shown) if self._shown is not None else len(self.lines)
        size = Size(min(self._width, RENDER_MAX + 40), rows)
        old = self.virtual_size
        if size == old:
            self.refresh()
            return
        room = self.container_size
        same_bars = (
            self.is_mounted
            and room.area > 0
            and (old.height > room.height) == (size.height > room.height)
            and (old.width > room.width) == (size.width > room.width)
        )
        if not same_bars:
            self.virtual_size = size
            self.refresh()
            return
        self.set_reactive(LogView.virtual_size, size)
        if self.show_vertical_scrollbar:
            self.vertical_scrollbar.window_virtual_size = size.height
        if self.show_horizontal_scrollbar:
            self.horizontal_scrollbar.window_virtual_size = size.width
        self.refresh()

    # -- search and context filter ------------------------------------------------------

    def set_matches(self, query: str, seqs: list[int]) -> None:
        self.search_text = query
        self.matches = seqs
        self.match_at = None
        self._recompute_shown()
        self._resize_virtual()

    def toggle_context(self) -> bool:
        self.context_only = not self.context_only and bool(self.search_text)
        self._recompute_shown()
        self._resize_virtual()
        if self.match_at is not None:
            self.show_seq(self.match_at)  # the rows moved: keep the current match in view
        return self.context_only

    def _recompute_shown(self) -> None:
        if not (self.context_only and self.search_text):
            self._shown = None
            return
        q = self.search_text.lower()
        keep: set[int] = set()
        for i, text in enumerate(self._texts):
            if q in text.lower():
                keep.update(range(max(0, i - CONTEXT), min(len(self._texts), i + CONTEXT + 1)))
        self._shown = sorted(keep)

    def index_of(self, seq: int) -> int | None:
        """Row of line ``seq`` in the window, or None when it is outside."""
        lo, hi = 0, len(self.lines)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.lines[mid].seq < seq:
                lo = mid + 1
            else:
                hi = mid
        if lo < len(self.lines) and self.lines[lo].seq == seq:
            if self._shown is None:
                return lo
            try:
                return self._shown.index(lo)
            except ValueError:
                return None
        return None

    def show_seq(self, seq: int) -> bool:
        """Scroll so line ``seq`` is in view; False if it is not in the window."""
        row = self.index_of(seq)
        if row is None:
            return False
        self.match_at = seq
        self._scroll(max(0, row - self.size.height // 3))
        # after the scroll: a match near the end must not resume following (and scroll away)
        self.following = False
        self.refresh()
        return True

    def window_around(self, lines: list[LogLine], has_older: bool) -> None:
        """Replace the window with lines around a far match (the tail is fetched on End)."""
        self._set(lines)
        self.has_older = has_older
        self.tail_dropped = True
        self.following = False

    # -- rendering ------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        row = scroll_y + y
        width = self.size.width
        index = row
        if self._shown is not None:
            if row >= len(self._shown):
                return Strip.blank(width, self.rich_style)
            index = self._shown[row]
        if index >= len(self.lines) or index < 0:
            return Strip.blank(width, self.rich_style)
        line = self.lines[index]
        text = self._texts[index]
        base = self.rich_style
        if line.stream == "meta":
            style = base + (TRUNCATED if "log truncated" in text else META)
            segments = [Segment(f"── {text} ──", style)]
        else:
            style = base + ERR if line.stream == "err" else base
            segments = self._highlight(text, style, current=line.seq == self.match_at)
        strip = Strip(segments).crop(scroll_x, scroll_x + width)
        return strip.extend_cell_length(width, base)

    def _highlight(self, text: str, style: Style, *, current: bool) -> list[Segment]:
        if not self.search_text:
            return [Segment(text, style)]
        q = self.search_text.lower()
        low = text.lower()
        out: list[Segment] = []
        pos = 0
        mark = MATCH + Style(bold=True, underline=current)
        while True:
            hit = low.find(q, pos)
            if hit < 0:
                out.append(Segment(text[pos:], style))
                return out
            out.append(Segment(text[pos:hit], style))
            out.append(Segment(text[hit : hit + len(q)], style + mark))
            pos = hit + len(q)

    # -- scrolling and following ------------------------------------------------------------

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        at_bottom = new_value >= self.max_scroll_y - 0.5
        if at_bottom and not self.tail_dropped and self._shown is None:
            if not self.following:
                self.following = True
                self.new_lines = 0
        elif new_value < old_value:
            self.following = False
        if new_value <= 0 and self.has_older and not self._loading_older and self.lines:
            self._loading_older = True
            assert self.job_id is not None
            self.post_message(self.NeedOlder(self, self.job_id, self.lines[0].seq))

    def action_follow(self) -> None:
        self.context_only = False
        self._shown = None
        if self.tail_dropped and self.job_id is not None:
            self.post_message(self.NeedTail(self, self.job_id))
            return
        self.following = True
        self.new_lines = 0
        self._resize_virtual()
        self._scroll(None)

    def action_page(self, direction: int) -> None:
        """A page at once, without animation: repeated PageUp moves a page per press."""
        self.scroll_to(y=self.scroll_y + direction * max(1, self.size.height - 1), animate=False)

    def action_top(self) -> None:
        self.following = False
        self.scroll_home(animate=False, immediate=True)
