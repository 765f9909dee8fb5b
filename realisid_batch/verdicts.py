"""Whose fault a failure is: the job's, or the server's (a missing model, a node pack not installed).

A server cannot tell us, so the run finds out by trying elsewhere: a job that failed on one server
(rejected by /prompt, or an error while it ran) goes to a server that has not tried it. It fails
for good only when every usable server has failed it, or when the server that failed it has run
other jobs (so the server works and the job is to blame). A server that fails `broken_after`
jobs in a row with the same error and no success between is *set up wrong*: it gets no more
jobs, it is reported once with that error, and the jobs it failed are not counted against them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

BROKEN_AFTER = 3


@dataclass
class ServerRecord:
    succeeded: bool = False          # ran a job to the end in this run
    streak: list = field(default_factory=list)  # jobs it failed in a row with the same reason, no success between
    streak_reason: str | None = None
    broken: str | None = None        # the error it failed every job with, once set up wrong


@dataclass
class Verdicts:
    broken_after: int = BROKEN_AFTER
    servers: dict = field(default_factory=dict)   # url -> ServerRecord
    tried: dict = field(default_factory=dict)     # job id -> {url: reason} of servers that failed it
    held: dict = field(default_factory=dict)      # job id -> url: failed there, nowhere else to go, verdict open
    done: set = field(default_factory=set)        # jobs that ran to the end in this run

    def server(self, url: str) -> ServerRecord:
        return self.servers.setdefault(url, ServerRecord())

    def is_broken(self, url: str) -> bool:
        return self.server(url).broken is not None

    def can_take(self, url: str, job_id: str) -> bool:
        return not self.is_broken(url) and url not in self.tried.get(job_id, {})

    def succeeded(self, url: str, job_id: str) -> list[str]:
        """`url` ran `job_id`; returns the servers this shows to be set up wrong (they failed it in a streak)."""
        record = self.server(url)
        record.succeeded, record.streak, record.streak_reason = True, [], None
        self.done.add(job_id)
        return [other for other in self.tried.get(job_id, {}) if self.check(other, others_exist=True)]

    def failed(self, url: str, job_id: str, reason: str) -> None:
        """Record that `url` failed `job_id` with `reason`."""
        self.tried.setdefault(job_id, {})[url] = reason
        record = self.server(url)
        if record.broken is None:
            record.streak = record.streak + [job_id] if reason == record.streak_reason else [job_id]
            record.streak_reason = reason

    def check(self, url: str, others_exist: bool) -> bool:
        """True when this finds `url` set up wrong (then it is marked so): a streak of `broken_after` failures
        with one error, and one of those jobs ran elsewhere — or no other server to ask and `url` ran nothing."""
        record = self.server(url)
        if record.broken is not None or len(record.streak) < self.broken_after:
            return False
        if any(job in self.done for job in record.streak) or (not others_exist and not record.succeeded):
            record.broken = record.streak_reason
            return True
        return False

    def blamed_on_job(self, job_id: str) -> bool:
        """Some server that failed the job works: it is not set up wrong and ran other jobs."""
        return any(not self.is_broken(url) and self.server(url).succeeded for url in self.tried.get(job_id, {}))

    def tried_only_by_broken(self, job_id: str) -> bool:
        return all(self.is_broken(url) for url in self.tried.get(job_id, {}))

    def reason(self, job_id: str) -> str:
        """The job's failure in the servers' words (one text when they agree)."""
        reasons = self.tried.get(job_id, {})
        texts = list(dict.fromkeys(reasons.values()))
        if len(texts) == 1:
            return texts[0]
        return " | ".join(f"on {url}: {text}" for url, text in reasons.items())
