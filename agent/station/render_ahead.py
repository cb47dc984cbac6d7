"""Card images become panels ahead of time, while the printers are busy with the cards before.

Rendering a card (PNG decode, colour separation, packing) costs tens of milliseconds of CPU
(the back, one design on every card, is separated once: card_render.CardRenderer); done between
two cards, the printer would wait for it. The next printable jobs are peeked
(not claimed: any printer may take them), parsed and rendered on one background thread; the
worker that claims one takes the parsed job with its panels, so a job is parsed once on its way
to the printer (intake judged it at the door with the same limits).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from agent.station.card_render import CardPanels, CardRenderer
from agent.core.limits import DEFAULT_LIMITS, JobLimits
from agent.core.os_thread import name_this_thread
from agent.upstream.job import Job, JobRejected, JobRejection, parse_job
from agent.journal import Journal, JobState


# A job in these states may still be asked for by `prepared`: leased (printable), or claimed by a
# printer that has not yet taken its panels.
_WAITING = (JobState.LEASED, JobState.FEEDING)


@dataclass(frozen=True)
class Prepared:
    """A job ready for the printer: parsed, and its faces as panels."""

    job: Job
    panels: CardPanels


class RenderAhead:
    def __init__(self, journal: Journal, *, depth: int, lookahead: int, limits: JobLimits = DEFAULT_LIMITS) -> None:
        self.journal = journal
        self.limits = limits
        self.renderer = CardRenderer(depth)  # the one back design, separated once
        self.lookahead = max(1, lookahead)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="render-ahead", initializer=name_this_thread)
        self._lock = threading.Lock()
        self._ready: OrderedDict[str, Future[Prepared]] = OrderedDict()

    def prepare_next(self) -> None:
        """Start rendering the jobs most likely to be claimed next; returns at once (the look
        into the journal happens on the render thread too)."""
        self._pool.submit(self._prepare)

    def _prepare(self) -> None:
        self.forget_finished()
        for job_id in self.journal.peek_printable(self.lookahead):
            with self._lock:
                if job_id in self._ready:
                    continue
            panels: Future[Prepared] = Future()
            with self._lock:
                self._ready[job_id] = panels
                self._drop_beyond_lookahead()
            if not panels.set_running_or_notify_cancel():
                continue  # dropped from the bound meanwhile
            try:
                panels.set_result(prepare(self.journal, job_id, self.limits, self.renderer))
            except Exception as exc:  # CardImageError and the like: raised again to the claimer
                panels.set_exception(exc)

    def prepared(self, job_id: str) -> Prepared:
        """The claimed job, parsed and rendered ahead if it was, else now.

        Raises CardImageError for faces that cannot be printed, JobRejected for a job these
        limits refuse (or whose body is gone)."""
        with self._lock:
            future = self._ready.pop(job_id, None)
        if future is not None and not future.cancelled():
            return future.result()
        return prepare(self.journal, job_id, self.limits, self.renderer)

    def give_back(self, job_id: str, prepared: Prepared) -> None:
        """A claimed job goes back unprinted (its feed was refused): keep its panels for the next
        claim, so that a printer paused for a cooling head does not render the job at every try."""
        future: Future[Prepared] = Future()
        future.set_result(prepared)
        with self._lock:
            self._ready[job_id] = future  # the newest entry: the last the bound would drop
            self._drop_beyond_lookahead()

    def forget_finished(self) -> None:
        """Drop the panels of jobs no longer waiting for a printer (printed, spoiled and waiting
        again, ended). A printer that claims a job between render-ahead's look into the journal
        and its entry for that job finds no entry and renders the job itself; the entry made after
        would otherwise stay until the bound pushed it out (2-3.5 MB a card; at the end of a batch,
        nothing ever would). Raises JournalError."""
        with self._lock:
            done = [job_id for job_id, future in self._ready.items() if future.done()]
        finished = [job_id for job_id in done if self.journal.job_state(job_id) not in _WAITING]
        with self._lock:
            for job_id in finished:
                self._ready.pop(job_id, None)

    def _drop_beyond_lookahead(self) -> None:
        # Bounded (call with the lock held): a card's panels are 2-3.5 MB; the oldest go first.
        while len(self._ready) > self.lookahead:
            self._ready.popitem(last=False)[1].cancel()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)



def prepare(journal: Journal, job_id: str, limits: JobLimits, renderer: CardRenderer) -> Prepared:
    """Read a job's body from the journal, parse it and render its faces with `renderer`.

    Raises JobRejected when the body is gone or these limits refuse it, CardImageError for faces
    that cannot be printed."""
    payload = journal.payload(job_id)
    if payload is None:
        raise JobRejected(JobRejection.MALFORMED, "the job's body is no longer in the journal")
    job = parse_job(payload, limits)
    return Prepared(job, renderer.render(job.front_png, job.back_png))
