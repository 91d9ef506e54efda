"""Stop sequences on a stream of text deltas.

Text that could be the beginning of a stop sequence is held back until it is known not to
be one, so a stop sequence split across tokens (``"\\n\\nQ"`` arriving as ``"\\n"``, ``"\\nQ"``)
is never sent to the client. The hold-back is the smallest possible: the longest suffix of
the pending text that is a proper prefix of some stop sequence.
"""

from __future__ import annotations


class StopMatcher:
    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in stops if s]
        self._pending = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        """Add generated text; return what is safe to emit now. After a stop sequence is
        found, :attr:`stopped` is True and nothing more is emitted."""
        if self.stopped:
            return ""
        if not self.stops:
            return text
        buf = self._pending + text
        # The stop that *completes* first wins (as it would if the text arrived one character
        # at a time); among stops completing at the same place, the one starting earliest.
        # Choosing by start alone made the result depend on how the text was split.
        first = -1
        first_end = -1
        for s in self.stops:
            i = buf.find(s)
            if i == -1:
                continue
            end = i + len(s)
            if first == -1 or (end, i) < (first_end, first):
                first, first_end = i, end
        if first != -1:
            self.stopped = True
            self._pending = ""
            return buf[:first]
        hold = self._holdback(buf)
        self._pending = buf[len(buf) - hold :] if hold else ""
        return buf[: len(buf) - hold]

    def flush(self) -> str:
        """At the end of generation, release what was held back."""
        out, self._pending = ("" if self.stopped else self._pending), ""
        return out

    def _holdback(self, buf: str) -> int:
        best = 0
        for s in self.stops:
            for k in range(min(len(s) - 1, len(buf)), best, -1):
                if buf.endswith(s[:k]):
                    best = k
                    break
        return best
