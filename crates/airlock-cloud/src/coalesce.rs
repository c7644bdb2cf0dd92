//! Look-ups of instances by id share `DescribeInstances` calls.
//!
//! A hundred instances refreshing at once used to cost a hundred `DescribeInstances` against the
//! account's EC2 rate limit, one per refresh. Here every look-up joins a queue per account; one
//! call at a time describes everything queued (up to [`MAX_IDS`] ids), and the look-ups that
//! arrive while it is on its way go together in the next one. Each call waits [`GATHER`] for
//! company before it leaves, the only delay a look-up on an idle account sees.
//!
//! The ids are sent as an `instance-id` filter, not as `InstanceIds`: EC2 fails a whole call by ids
//! when one of them does not exist, and one instance's typo must not fail its neighbours. Each
//! caller still gets what a call of its own would have given, including EC2's
//! `InvalidInstanceID.NotFound` for an id that is not there.

use crate::{CloudError, Ec2, Filter, Instance};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// Filter values EC2 accepts in one call.
pub const MAX_IDS: usize = 200;

/// How long a call waits for more look-ups before it leaves.
const GATHER: std::time::Duration = std::time::Duration::from_millis(20);

/// Accounts whose look-up queues are kept at most; a queue is dropped when it empties.
const MAX_ACCOUNTS: usize = 10_000;

/// Look-ups waiting in one call at most, over all accounts; beyond, a look-up makes its own
/// call (bounded by the caller's own limits) rather than waiting in an unbounded queue.
const MAX_WAITING: usize = 100_000;

/// What a look-up gets back.
type Answer = Result<Vec<Instance>, CloudError>;

/// One look-up: the ids asked for, and where its answer goes.
struct Waiter {
    ids: Vec<String>,
    reply: oneshot::Sender<Answer>,
}

/// The queue of one account: who waits, and whether a call is on its way.
#[derive(Default)]
struct Queue {
    waiting: Vec<Waiter>,
    calling: bool,
}

/// Shared look-ups, per account key (any string that names one EC2 client, e.g. the account's
/// name in the console).
#[derive(Default)]
pub struct Coalescer {
    queues: Mutex<HashMap<String, Queue>>,
    /// How many `DescribeInstances` calls were made, for tests and metrics.
    calls: std::sync::atomic::AtomicU64,
}

impl Coalescer {
    /// A coalescer with no queues yet.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The instances with these ids, as `DescribeInstances` by ids answers: every id found, or
    /// `InvalidInstanceID.NotFound` naming the ones that are not.
    pub async fn instances(
        self: &Arc<Self>,
        account: &str,
        ec2: Arc<dyn Ec2>,
        ids: &[String],
    ) -> Answer {
        if ids.is_empty() || ids.len() > MAX_IDS {
            return ec2.describe_instances(&[], ids).await;
        }
        let (reply, answer) = oneshot::channel();
        let waiter = Waiter {
            ids: ids.to_vec(),
            reply,
        };
        match self.enqueue(account, waiter) {
            Enqueued::Start => {
                let me = self.clone();
                let account = account.to_owned();
                tokio::spawn(async move { me.drain(&account, ec2).await });
            }
            Enqueued::Joined => {}
            Enqueued::Full => return ec2.describe_instances(&[], ids).await,
        }
        answer
            .await
            .unwrap_or_else(|_| Err(CloudError::local("the shared instance look-up stopped")))
    }

    /// `DescribeInstances` calls made so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Queue>> {
        // A poisoned map only means a task panicked while holding it; the queues are still sound.
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn enqueue(&self, account: &str, waiter: Waiter) -> Enqueued {
        let mut queues = self.lock();
        let waiting: usize = queues.values().map(|q| q.waiting.len()).sum();
        if waiting >= MAX_WAITING || (queues.len() >= MAX_ACCOUNTS && !queues.contains_key(account))
        {
            return Enqueued::Full;
        }
        let queue = queues.entry(account.to_owned()).or_default();
        queue.waiting.push(waiter);
        if queue.calling {
            Enqueued::Joined
        } else {
            queue.calling = true;
            Enqueued::Start
        }
    }

    /// Describes what is queued for `account`, batch after batch, until nothing waits.
    async fn drain(&self, account: &str, ec2: Arc<dyn Ec2>) {
        loop {
            // Look-ups of one burst (instances refreshing together) arrive spread over a few
            // milliseconds; a short wait lets them share the call.
            tokio::time::sleep(GATHER).await;
            let Some(batch) = self.next_batch(account) else {
                return;
            };
            let ids: Vec<String> = batch
                .iter()
                .flat_map(|w| w.ids.iter().cloned())
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            self.calls
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let found = ec2
                .describe_instances(
                    &[Filter {
                        name: "instance-id".into(),
                        values: ids,
                    }],
                    &[],
                )
                .await;
            for waiter in batch {
                let answer = answer_for(&waiter.ids, &found);
                // A caller that gave up no longer listens; nothing to do for it.
                let _ = waiter.reply.send(answer);
            }
        }
    }

    /// The next look-ups to describe together (at most [`MAX_IDS`] ids), or `None` when the
    /// queue is empty, which also ends the account's call.
    fn next_batch(&self, account: &str) -> Option<Vec<Waiter>> {
        let mut queues = self.lock();
        let queue = queues.get_mut(account)?;
        if queue.waiting.is_empty() {
            queues.remove(account);
            return None;
        }
        let mut taken = 0;
        let mut split = 0;
        for waiter in &queue.waiting {
            if taken + waiter.ids.len() > MAX_IDS {
                break;
            }
            taken += waiter.ids.len();
            split += 1;
        }
        let rest = queue.waiting.split_off(split);
        Some(std::mem::replace(&mut queue.waiting, rest))
    }
}

/// Where a look-up went.
enum Enqueued {
    /// First in an idle queue: this caller starts the calls.
    Start,
    /// A call is on its way; this look-up goes in the next one.
    Joined,
    /// Too many wait already: the caller asks on its own.
    Full,
}

/// One caller's share of a shared answer, as a call with only its ids would have given it.
fn answer_for(ids: &[String], found: &Answer) -> Answer {
    let all = found.as_ref().map_err(Clone::clone)?;
    let mine: Vec<Instance> = all
        .iter()
        .filter(|i| ids.contains(&i.instance_id))
        .cloned()
        .collect();
    let missing: Vec<&str> = ids
        .iter()
        .filter(|id| !mine.iter().any(|i| &i.instance_id == *id))
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        return Ok(mine);
    }
    Err(CloudError {
        code: Some("InvalidInstanceID.NotFound".into()),
        message: format!("The instance IDs '{}' do not exist", missing.join(", ")),
        request_id: None,
        retryable: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(id: &str) -> Instance {
        Instance {
            instance_id: id.into(),
            image_id: None,
            instance_type: None,
            state: "running".into(),
            private_ip: None,
            public_ip: None,
            subnet_id: None,
            vpc_id: None,
            launch_time: None,
            tags: Vec::new(),
            availability_zone: None,
            root_device_name: None,
        }
    }

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn each_caller_gets_only_its_own_instances_from_a_shared_answer() {
        let found = Ok(vec![instance("i-a"), instance("i-b"), instance("i-c")]);
        let mine = answer_for(&ids(&["i-b"]), &found).unwrap();
        assert_eq!(mine, vec![instance("i-b")]);
    }

    #[test]
    fn a_missing_id_is_not_found_for_its_caller_only_as_ec2_would_answer() {
        let found = Ok(vec![instance("i-a")]);
        let err = answer_for(&ids(&["i-a", "i-gone"]), &found).unwrap_err();
        assert_eq!(err.code.as_deref(), Some("InvalidInstanceID.NotFound"));
        assert!(err.message.contains("i-gone") && !err.message.contains("i-a,"));
        assert!(answer_for(&ids(&["i-a"]), &found).is_ok());
    }

    #[test]
    fn a_failed_shared_call_fails_every_caller_with_ec2_s_error() {
        let found: Answer = Err(CloudError {
            code: Some("AuthFailure".into()),
            message: "no".into(),
            request_id: None,
            retryable: false,
        });
        let err = answer_for(&ids(&["i-a"]), &found).unwrap_err();
        assert_eq!(err.code.as_deref(), Some("AuthFailure"));
    }

    fn waiter(list: &[&str]) -> Waiter {
        Waiter {
            ids: ids(list),
            reply: oneshot::channel().0,
        }
    }

    #[test]
    fn batches_stop_at_ec2_s_filter_limit_and_the_queue_ends_when_empty() {
        let coalescer = Coalescer::default();
        let many: Vec<String> = (0..150).map(|n| format!("i-{n}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(matches!(
            coalescer.enqueue("dev", waiter(&many)),
            Enqueued::Start
        ));
        assert!(matches!(
            coalescer.enqueue("dev", waiter(&many)),
            Enqueued::Joined
        ));
        assert!(matches!(
            coalescer.enqueue("dev", waiter(&["i-x"])),
            Enqueued::Joined
        ));
        // 150 + 150 > 200: the second waits for the next call; the third follows it.
        assert_eq!(coalescer.next_batch("dev").unwrap().len(), 1);
        assert_eq!(coalescer.next_batch("dev").unwrap().len(), 2);
        assert!(coalescer.next_batch("dev").is_none());
        // Emptied and gone: the next look-up starts a call again.
        assert!(matches!(
            coalescer.enqueue("dev", waiter(&["i-y"])),
            Enqueued::Start
        ));
    }

    #[test]
    fn accounts_queue_apart() {
        let coalescer = Coalescer::default();
        assert!(matches!(
            coalescer.enqueue("dev", waiter(&["i-a"])),
            Enqueued::Start
        ));
        assert!(matches!(
            coalescer.enqueue("prod", waiter(&["i-a"])),
            Enqueued::Start
        ));
    }
}
