//! The group-commit barrier between the requests and the audit writer:
//! requests leave their encoded records in the [`Inbox`] and wait for an
//! ack; the writer takes every job waiting at once (one group), makes the
//! group durable, and wakes the group's first waiter, which wakes the rest
//! ([`Fanout`]). Each ack carries a [`Claim`], settled once its request
//! holds it, so the writer can tell when the runtime has taken up the
//! answers it sent.
//!
//! ```text
//! request ─▶ Inbox::put(Job) ──────────▶ writer: Inbox::wait(Want) ─ take(group)
//!   ▲                                                   │ commit
//!   └── Acked { outcome, spent, rest: Fanout, claim } ◀─┘ Fanout::send
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::oneshot;

/// Records to append, encoded by the request that made them. The bytes go
/// back to it with the ack, so that the thread that allocated them frees
/// them (a free from another thread costs the allocator more on both).
pub(super) struct Job {
    /// The entries, each as `u32be(len) ‖ entry` (`record::encode_entry`).
    pub(super) entries: Vec<u8>,
    /// How many entries `entries` holds.
    pub(super) records: usize,
    /// Where the ack goes.
    pub(super) done: oneshot::Sender<Acked>,
}

/// A job's answer: its last record's number once durable, or why not.
pub(super) type Outcome = std::result::Result<u64, String>;

/// One job's ack: where to send it, what it says, the job's bytes, and the
/// claim its request settles once it holds the ack.
pub(super) type Ack = (oneshot::Sender<Acked>, Outcome, Vec<u8>, Claim);

/// What a waiting request is sent when its group is durable.
pub(super) struct Acked {
    pub(super) outcome: Outcome,
    /// The job's bytes, to be freed by the request.
    pub(super) spent: Vec<u8>,
    /// The rest of the group, for the first waiter to wake.
    pub(super) rest: Fanout,
    /// Settled when dropped: by the request once it runs again, or with
    /// the ack of a request that is gone.
    pub(super) claim: Claim,
}

/// An ack sent and not yet in its request's hands.
///
/// While any is out, the runtime has not yet worked through the answers
/// of the groups already durable: under load, the writer's next group
/// waits for them (see `Writer::run`). Counted in [`Inbox::unclaimed`].
pub(super) struct Claim(Arc<Inbox>);

impl Claim {
    pub(super) fn new(inbox: &Arc<Inbox>) -> Self {
        inbox.unclaimed.fetch_add(1, Ordering::AcqRel);
        Self(inbox.clone())
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if self.0.unclaimed.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.all_claimed();
        }
    }
}

/// The acks of a group's other jobs, sent when this is dropped.
///
/// The writer wakes only the first waiter of a group, and hands it the
/// others: it drops them on a runtime thread, where each wake is a push on
/// that thread's own queue, rather than one push on the runtime's shared
/// queue (and often a sleeping worker woken) per request from the writer's
/// thread. Sent on drop, wherever the drop happens (a waiter gone before
/// its ack arrived drops it with its channel), no ack is lost.
pub(super) struct Fanout(Vec<Ack>);

impl Fanout {
    /// Sends each of `acks`: the first one carries the others.
    pub(super) fn send(acks: Vec<Ack>) {
        let mut acks = acks.into_iter();
        if let Some((done, outcome, spent, claim)) = acks.next() {
            // A waiter that is gone returns the ack, which is dropped here:
            // the others are then sent from this thread.
            let _ = done.send(Acked {
                outcome,
                spent,
                rest: Fanout(acks.collect()),
                claim,
            });
        }
    }
}

impl Drop for Fanout {
    fn drop(&mut self) {
        for (done, outcome, spent, claim) in self.0.drain(..) {
            let _ = done.send(Acked {
                outcome,
                spent,
                rest: Fanout(Vec::new()),
                claim,
            });
        }
    }
}

/// Where requests leave jobs for the writer, which takes all of them at
/// once: nothing is allocated per job, and an append wakes the writer only
/// when it sleeps.
#[derive(Default)]
pub(super) struct Inbox {
    waiting: Mutex<Waiting>,
    arrived: Condvar,
    /// Acks sent and not yet claimed ([`Claim`]).
    unclaimed: AtomicUsize,
}

#[derive(Default)]
struct Waiting {
    jobs: Vec<Job>,
    /// How many records `jobs` holds.
    records: usize,
    /// The writer sleeps on `arrived` until it has this.
    asleep: Option<Want>,
    /// No more jobs are taken: the log was closed, or every handle dropped.
    closed: bool,
}

/// What the writer waits for before it takes a group.
#[derive(Clone, Copy, Debug)]
pub(super) struct Want {
    /// At least this many records waiting.
    pub(super) records: usize,
    /// And every ack sent claimed.
    pub(super) claimed: bool,
}

impl Want {
    /// At least `n` records, whatever is unclaimed.
    pub(super) fn records(n: usize) -> Self {
        Self {
            records: n,
            claimed: false,
        }
    }
}

impl Waiting {
    /// Whether `want` is met.
    fn has(&self, want: Want, inbox: &Inbox) -> bool {
        self.records >= want.records
            && !(want.claimed && inbox.unclaimed.load(Ordering::Acquire) > 0)
    }
}

impl Inbox {
    /// Leaves `job` for the writer; gives it back once the log is closed.
    pub(super) fn put(&self, job: Job) -> std::result::Result<(), Job> {
        let mut waiting = self.lock();
        if waiting.closed {
            return Err(job);
        }
        waiting.records += job.records;
        waiting.jobs.push(job);
        self.wake_if_wanted(waiting);
        Ok(())
    }

    /// Wakes the writer if it sleeps and what it wants is here. Called
    /// when the last claim is settled.
    fn all_claimed(&self) {
        self.wake_if_wanted(self.lock());
    }

    fn wake_if_wanted(&self, mut waiting: MutexGuard<'_, Waiting>) {
        if waiting.asleep.is_some_and(|want| waiting.has(want, self)) {
            waiting.asleep = None;
            drop(waiting);
            self.arrived.notify_one();
        }
    }

    /// Takes no more jobs; the writer commits those it holds and stops.
    pub(super) fn close(&self) {
        self.lock().closed = true;
        self.arrived.notify_one();
    }

    /// Waits up to `limit` for what is wanted, or the close; whether any
    /// job waits or the log is closed.
    pub(super) fn wait(&self, want: Want, limit: Duration) -> bool {
        let mut waiting = self.lock();
        let not_yet = |w: &mut Waiting| !w.closed && !w.has(want, self);
        if not_yet(&mut waiting) {
            waiting.asleep = Some(want);
            waiting = self
                .arrived
                .wait_timeout_while(waiting, limit, not_yet)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            waiting.asleep = None;
        }
        !waiting.jobs.is_empty() || waiting.closed
    }

    /// Swaps every waiting job into `group` (empty, its capacity kept for
    /// the next jobs); whether the log is closed.
    pub(super) fn take(&self, group: &mut Vec<Job>) -> bool {
        let mut waiting = self.lock();
        std::mem::swap(group, &mut waiting.jobs);
        waiting.records = 0;
        waiting.closed
    }

    fn lock(&self) -> MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One handle's hold on the inbox: the last one dropped closes the log.
pub(super) struct Inlet(pub(super) Arc<Inbox>);

impl Drop for Inlet {
    fn drop(&mut self) {
        self.0.close();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// Three acks (1, 2, 3), each with its claim on `inbox`.
    fn three_acks(inbox: &Arc<Inbox>) -> (Vec<Ack>, Vec<oneshot::Receiver<Acked>>) {
        (1..=3u64)
            .map(|n| {
                let (done, waiting) = oneshot::channel();
                ((done, Ok(n), vec![n as u8], Claim::new(inbox)), waiting)
            })
            .unzip()
    }

    /// Each waiter's own outcome and bytes, once whoever holds the rest has
    /// let them go; its claim is settled.
    fn delivered(waiting: oneshot::Receiver<Acked>) -> (Outcome, Vec<u8>) {
        let Acked {
            outcome,
            spent,
            rest,
            claim,
        } = waiting.blocking_recv().expect("an ack");
        drop((rest, claim));
        (outcome, spent)
    }

    fn unclaimed(inbox: &Inbox) -> usize {
        inbox.unclaimed.load(Ordering::Acquire)
    }

    #[test]
    fn every_waiter_of_a_group_is_acked_whatever_the_first_one_does() {
        let inbox = Arc::new(Inbox::default());
        // The first waiter reads its ack and passes the others on.
        let (acks, mut waiting) = three_acks(&inbox);
        Fanout::send(acks);
        assert_eq!(unclaimed(&inbox), 3, "every ack sent is out");
        let first = waiting.remove(0).blocking_recv().unwrap();
        assert_eq!(first.rest.0.len(), 2, "the first waiter carries the rest");
        assert_eq!((first.outcome, first.spent.clone()), (Ok(1), vec![1]));
        drop((first.rest, first.claim));
        assert_eq!(unclaimed(&inbox), 2);
        for (n, w) in (2..).zip(waiting) {
            assert_eq!(delivered(w), (Ok(n), vec![n as u8]));
        }
        assert_eq!(unclaimed(&inbox), 0, "every ack claimed");

        // The first waiter is gone before the ack: the writer sends the
        // rest, and the ack it could not deliver is settled with it.
        let (acks, mut waiting) = three_acks(&inbox);
        drop(waiting.remove(0));
        Fanout::send(acks);
        assert_eq!(unclaimed(&inbox), 2);
        for (n, w) in (2..).zip(waiting) {
            assert_eq!(delivered(w), (Ok(n), vec![n as u8]));
        }
        assert_eq!(unclaimed(&inbox), 0);

        // The first waiter is gone after the ack arrived, unread: dropping
        // it with its channel sends the rest and settles its claim.
        let (acks, mut waiting) = three_acks(&inbox);
        let first = waiting.remove(0);
        Fanout::send(acks);
        drop(first);
        assert_eq!(unclaimed(&inbox), 2);
        for (n, w) in (2..).zip(waiting) {
            assert_eq!(delivered(w), (Ok(n), vec![n as u8]));
        }
        assert_eq!(unclaimed(&inbox), 0);
    }

    /// Returns once the writer sleeps on `inbox`.
    fn asleep(inbox: &Inbox) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while inbox.lock().asleep.is_none() {
            assert!(Instant::now() < deadline, "the writer never slept");
            std::thread::yield_now();
        }
    }

    /// Does `then` on another thread once the writer sleeps on `inbox`.
    fn once_asleep(
        inbox: &Arc<Inbox>,
        then: impl FnOnce(&Inbox) + Send + 'static,
    ) -> std::thread::JoinHandle<()> {
        let inbox = inbox.clone();
        std::thread::spawn(move || {
            asleep(&inbox);
            then(&inbox);
        })
    }

    fn job(records: usize) -> Job {
        Job {
            entries: Vec::new(),
            records,
            done: oneshot::channel().0,
        }
    }

    #[test]
    fn the_writer_waits_for_as_many_records_as_it_wants_or_the_limit() {
        let inbox = Arc::new(Inbox::default());
        // Fewer records than wanted: the wait lasts its whole limit and
        // reports that jobs wait.
        inbox.put(job(1)).map_err(drop).unwrap();
        let started = Instant::now();
        assert!(inbox.wait(Want::records(3), Duration::from_millis(50)));
        assert!(started.elapsed() >= Duration::from_millis(50));

        // Once the writer sleeps, the record that makes up the count wakes
        // it (a missed wake would leave it asleep to the end of its limit).
        let limit = Duration::from_secs(30);
        let filler = once_asleep(&inbox, |inbox| inbox.put(job(2)).map_err(drop).unwrap());
        let started = Instant::now();
        assert!(inbox.wait(Want::records(3), limit));
        assert!(started.elapsed() < limit, "woken by the put");
        filler.join().unwrap();
        let mut group = Vec::new();
        assert!(!inbox.take(&mut group));
        assert_eq!(group.iter().map(|j| j.records).sum::<usize>(), 3);

        // Taken, the count starts again; the close ends any wait.
        assert!(!inbox.wait(Want::records(1), Duration::from_millis(10)));
        let closer = once_asleep(&inbox, Inbox::close);
        let started = Instant::now();
        assert!(inbox.wait(Want::records(1), limit));
        assert!(started.elapsed() < limit, "woken by the close");
        closer.join().unwrap();
        assert!(inbox.put(job(1)).is_err(), "a closed inbox takes no job");
    }

    #[test]
    fn a_paced_group_waits_until_every_ack_sent_is_claimed() {
        let inbox = Arc::new(Inbox::default());
        let limit = Duration::from_secs(30);
        let paced = Want {
            records: 2,
            claimed: true,
        };
        inbox.put(job(2)).map_err(drop).unwrap();
        // Nothing out: the records are enough.
        let started = Instant::now();
        assert!(inbox.wait(paced, limit));
        assert!(started.elapsed() < limit);

        // Two acks out: the records alone are not enough, and the wait
        // lasts its whole limit, unless only records are wanted.
        let (first, second) = (Claim::new(&inbox), Claim::new(&inbox));
        let started = Instant::now();
        assert!(inbox.wait(paced, Duration::from_millis(50)));
        assert!(started.elapsed() >= Duration::from_millis(50));
        let started = Instant::now();
        assert!(inbox.wait(Want::records(2), limit));
        assert!(started.elapsed() < limit);

        // One claim settled, one still out: the writer sleeps until the
        // last one is settled, which wakes it.
        drop(first);
        let claimer = once_asleep(&inbox, move |_| drop(second));
        let started = Instant::now();
        assert!(inbox.wait(paced, limit));
        assert!(started.elapsed() < limit, "woken by the last claim");
        claimer.join().unwrap();
        assert_eq!(unclaimed(&inbox), 0);

        // Claims settled, the records that make up the count wake it.
        let mut group = Vec::new();
        inbox.take(&mut group);
        let filler = once_asleep(&inbox, |inbox| inbox.put(job(2)).map_err(drop).unwrap());
        let started = Instant::now();
        assert!(inbox.wait(paced, limit));
        assert!(started.elapsed() < limit, "woken by the put");
        filler.join().unwrap();
    }
}
