//! The console's event stream: what it changed in EC2 (instances launched, started, stopped,
//! rebooted, terminated, tags created or deleted) and in its stored gateway configurations,
//! pushed at once to whoever watches `GET /v1/events` (Server-Sent Events) — gateways, so that a
//! change made through the console converges in about a second instead of one refresh.
//!
//! Events name the action, the AWS account id, the region and the resource ids; they never carry
//! credentials, tags or request bodies. Each console process has its bus; on a PostgreSQL store
//! the nodes pass their events to each other with `NOTIFY`, so a watcher of any node sees the
//! changes made through every node. Every watcher is told to catch up (a `resync` event) when it
//! connects, whenever it fell behind, and when its node lost the other nodes' notifications for a
//! while.

use crate::auth::Caller;
use crate::authz::{authorize_one, console_arn};
use crate::error::ApiResult;
use crate::state::AppState;
pub use airlock_api::events::{Event, EventKind};
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// The console action that allows watching the event stream.
pub const WATCH_ACTION: &str = "airlock:WatchEvents";

/// EC2 actions whose success changes which instances run or how they are tagged.
pub const MEMBERSHIP_ACTIONS: &[&str] = &[
    "ec2:RunInstances",
    "ec2:StartInstances",
    "ec2:StopInstances",
    "ec2:RebootInstances",
    "ec2:TerminateInstances",
    "ec2:CreateTags",
    "ec2:DeleteTags",
];

/// Events kept for watchers that are briefly slow; one that falls further behind gets `resync`.
const CAPACITY: usize = 1024;

/// Events waiting to be passed to the other nodes; beyond, they are dropped (and the other
/// nodes' watchers catch up at their next refresh).
const OUTBOX: usize = 1024;
/// Resources per notification: PostgreSQL's `NOTIFY` payload is at most 8000 bytes.
const RESOURCES_PER_NOTIFICATION: usize = 100;

/// The in-process bus every change is published on.
pub struct EventBus {
    tx: broadcast::Sender<Event>,
    seq: AtomicU64,
    /// To the task that passes this node's events to the other nodes, once it runs.
    outbox: std::sync::OnceLock<mpsc::Sender<Event>>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus {
            tx: broadcast::channel(CAPACITY).0,
            seq: AtomicU64::new(0),
            outbox: std::sync::OnceLock::new(),
        }
    }
}

/// An event as it travels between nodes, with the node it happened on.
#[derive(serde::Serialize, serde::Deserialize)]
struct Notification {
    origin: String,
    event: Event,
}

impl EventBus {
    /// Publishes an event (dropped silently when nobody watches).
    pub fn publish(
        &self,
        kind: EventKind,
        action: &str,
        account: Option<String>,
        region: Option<String>,
        resources: Vec<String>,
    ) {
        let event = Event {
            seq: self.seq.fetch_add(1, Ordering::Relaxed) + 1,
            at: crate::now(),
            kind,
            action: action.to_owned(),
            account,
            region,
            resources,
        };
        tracing::debug!(kind = kind.name(), action, resources = ?event.resources, "event");
        if let Some(outbox) = self.outbox.get() {
            if outbox.try_send(event.clone()).is_err() {
                tracing::warn!("the other nodes' event queue is full; they miss an event");
            }
        }
        let _ = self.tx.send(event);
    }

    /// Publishes an event that happened on another node, numbered in this node's sequence.
    fn publish_remote(&self, mut event: Event) {
        event.seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let _ = self.tx.send(event);
    }

    /// Tells every watcher to catch up.
    fn publish_resync(&self, why: &str) {
        let _ = self.tx.send(self.resync(why));
    }

    /// Publishes what a successful EC2 call changed, from the resource ARNs the audit record
    /// names (`arn:aws:ec2:REGION:ACCOUNT:TYPE/ID`, or a console deployment ARN for launches).
    /// Calls that change no membership are ignored.
    pub fn publish_ec2_call(&self, action: &str, resources: &[String]) {
        if !MEMBERSHIP_ACTIONS.contains(&action) {
            return;
        }
        let mut account = None;
        let mut region = None;
        let mut ids = Vec::new();
        for arn in resources {
            let parts: Vec<&str> = arn.splitn(6, ':').collect();
            let [_, _, service, arn_region, arn_account, resource] = parts.as_slice() else {
                continue;
            };
            if *service == "ec2" {
                region =
                    region.or_else(|| Some((*arn_region).to_owned()).filter(|s| !s.is_empty()));
                account =
                    account.or_else(|| Some((*arn_account).to_owned()).filter(|s| !s.is_empty()));
            }
            if let Some((_, id)) = resource.split_once('/') {
                ids.push(id.to_owned());
            }
        }
        self.publish(EventKind::Instances, action, account, region, ids);
    }

    /// Watchers subscribed now.
    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Events waiting to be passed to the other nodes.
    pub fn outbox_depth(&self) -> usize {
        self.outbox
            .get()
            .map_or(0, |tx| tx.max_capacity().saturating_sub(tx.capacity()))
    }

    /// A new watcher.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    fn resync(&self, why: &str) -> Event {
        Event {
            seq: self.seq.load(Ordering::Relaxed),
            at: crate::now(),
            kind: EventKind::Resync,
            action: why.to_owned(),
            account: None,
            region: None,
            resources: Vec::new(),
        }
    }
}

fn sse(event: &Event) -> SseEvent {
    let data = serde_json::to_string(event).unwrap_or_else(|_| "{}".into());
    SseEvent::default()
        .event(event.kind.name())
        .id(event.seq.to_string())
        .data(data)
}

/// The stream handed to axum: a channel fed by a task that follows the bus (or EC2) for this
/// watcher.
pub(crate) struct Watch(pub(crate) mpsc::Receiver<SseEvent>);

impl futures_core::Stream for Watch {
    type Item = Result<SseEvent, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|e| e.map(Ok))
    }
}

/// `GET /v1/events`: Server-Sent Events, one per change, after a first `resync`.
#[utoipa::path(
    get,
    path = "/v1/events",
    summary = "Server-Sent Events: instances launched, started, stopped, rebooted, terminated or re-tagged through this console or any console sharing its database, and gateway configuration changes; a `resync` event first, whenever the watcher fell behind and when other nodes' events may have been missed; the stream ends when the node drains (airlock:WatchEvents on arn:airlock:console:::events/*)",
    responses(
        (status = 200, description = "An endless text/event-stream; each event's data is a GatewayEvent", content_type = "text/event-stream", body = airlock_api::events::Event),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn stream(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Sse<impl futures_core::Stream<Item = Result<SseEvent, Infallible>>>> {
    authorize_one(&state, &caller, WATCH_ACTION, &console_arn("events", "*")).await?;
    let slot = state.streams.open(&caller.user)?;
    let mut rx = state.events.subscribe();
    let (tx, out) = mpsc::channel(64);
    let first = state.events.resync("connected");
    let bus = state.events.clone();
    let mut visible = Visibility::new(state.clone(), caller.clone());
    let holder = caller.clone();
    tokio::spawn(async move {
        let _slot = slot;
        if tx.send(sse(&first)).await.is_err() {
            return;
        }
        let mut recheck = tokio::time::interval(crate::streams::RECHECK);
        loop {
            let next = tokio::select! {
                r = rx.recv() => r,
                // The watcher went away: stop following the bus.
                _ = tx.closed() => return,
                // The node drains: the watcher reconnects, through the balancer, to another.
                () = visible.state.cluster.drain_started() => return,
                _ = recheck.tick() => {
                    if crate::streams::login_holds(&visible.state, &holder).await {
                        continue;
                    }
                    tracing::info!(user = %holder.user, "event stream ended: its login no longer holds");
                    return;
                }
            };
            let event = match next {
                Ok(e) => e,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(
                        missed = n,
                        "an event watcher fell behind; telling it to resync"
                    );
                    bus.resync("lagged")
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if !visible.allows(&event).await {
                continue;
            }
            if tx.send(sse(&event)).await.is_err() {
                return;
            }
        }
    });
    tracing::info!(user = %caller.user, "event watcher connected");
    Ok(Sse::new(Watch(out)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// What one watcher may be told: each event is decided with the watcher's policies, read
/// again at most every few seconds so that a narrowed policy narrows a stream already open.
struct Visibility {
    state: AppState,
    caller: Caller,
    policies: Option<(
        std::time::Instant,
        std::sync::Arc<Vec<airlock_policy::Policy>>,
    )>,
}

/// How long a watcher's policies are used before they are read again.
const POLICY_RECHECK: Duration = Duration::from_secs(5);

impl Visibility {
    fn new(state: AppState, caller: Caller) -> Visibility {
        Visibility {
            state,
            caller,
            policies: None,
        }
    }

    async fn allows(&mut self, event: &Event) -> bool {
        let check = match event.kind {
            EventKind::Resync => return true,
            EventKind::Instances => {
                airlock_access::ops::see_instance_event(event.region.as_deref())
            }
            EventKind::GatewayConfig => airlock_access::ops::see_gateway_config_event(),
        };
        let fresh = self
            .policies
            .as_ref()
            .filter(|(at, _)| at.elapsed() < POLICY_RECHECK)
            .map(|(_, p)| p.clone());
        let policies = match fresh {
            Some(p) => p,
            None => match crate::authz::policies_of(&self.state, &self.caller.user).await {
                Ok(p) => {
                    self.policies = Some((std::time::Instant::now(), p.clone()));
                    p
                }
                Err(_) => return false,
            },
        };
        crate::authz::permits(&policies, &crate::authz::principal(&self.caller), &check)
    }
}

/// Passes this node's events to the other nodes and theirs to this node's watchers, for as long
/// as the process runs (PostgreSQL only: a SQLite store has one node). Changes made through
/// another node also invalidate this node's cached tags of the resources they name.
pub async fn join_nodes(state: AppState) {
    let listener = match state.store.listen(airlock_store::EVENTS_CHANNEL).await {
        Ok(Some(listener)) => listener,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for the other nodes' events; watchers of this node see only its own changes");
            return;
        }
    };
    let (tx, rx) = mpsc::channel(OUTBOX);
    if state.events.outbox.set(tx).is_err() {
        return;
    }
    tokio::spawn(send_to_nodes(state.clone(), rx));
    hear_nodes(state, listener).await;
}

async fn send_to_nodes(state: AppState, mut rx: mpsc::Receiver<Event>) {
    while let Some(event) = rx.recv().await {
        for part in split(event) {
            let note = Notification {
                origin: state.cluster.node_id().to_owned(),
                event: part,
            };
            let Ok(payload) = serde_json::to_string(&note) else {
                continue;
            };
            if let Err(e) = state
                .store
                .notify(airlock_store::EVENTS_CHANNEL, &payload)
                .await
            {
                tracing::warn!(error = %e, "cannot pass an event to the other nodes");
            }
        }
    }
}

/// An event in parts small enough for one notification each.
fn split(event: Event) -> Vec<Event> {
    if event.resources.len() <= RESOURCES_PER_NOTIFICATION {
        return vec![event];
    }
    event
        .resources
        .chunks(RESOURCES_PER_NOTIFICATION)
        .map(|ids| Event {
            resources: ids.to_vec(),
            ..event.clone()
        })
        .collect()
}

async fn hear_nodes(state: AppState, mut listener: airlock_store::Listener) {
    use airlock_store::Heard;
    loop {
        match listener.next().await {
            Ok(Heard::Payload(payload)) => {
                let Ok(note) = serde_json::from_str::<Notification>(&payload) else {
                    tracing::warn!("ignored a malformed event from another node");
                    continue;
                };
                if note.origin == state.cluster.node_id() {
                    continue;
                }
                state.tags.forget_everywhere(&note.event.resources);
                state.events.publish_remote(note.event);
            }
            // The connection was lost and is made again at the next call: what was sent
            // meanwhile is lost, so every watcher catches up and no cached tag is trusted.
            Ok(Heard::Lost) => {
                tracing::warn!("lost the other nodes' events for a while; watchers resync");
                state.tags.clear();
                state.events.publish_resync("reconnected");
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot hear the other nodes' events; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ec2_calls_become_events_with_ids_account_and_region() {
        let bus = EventBus::default();
        let mut rx = bus.subscribe();
        bus.publish_ec2_call(
            "ec2:StopInstances",
            &[
                "arn:aws:ec2:us-east-1:123456789012:instance/i-1".into(),
                "arn:aws:ec2:us-east-1:123456789012:instance/i-2".into(),
            ],
        );
        bus.publish_ec2_call("ec2:DescribeInstances", &["*".into()]);
        bus.publish_ec2_call(
            "ec2:RunInstances",
            &["arn:airlock:console:::deployment/d-1".into()],
        );
        let e = rx.try_recv().unwrap();
        assert_eq!(e.kind, EventKind::Instances);
        assert_eq!(e.action, "ec2:StopInstances");
        assert_eq!(e.account.as_deref(), Some("123456789012"));
        assert_eq!(e.region.as_deref(), Some("us-east-1"));
        assert_eq!(e.resources, ["i-1", "i-2"]);
        let e = rx.try_recv().unwrap();
        assert_eq!(e.action, "ec2:RunInstances", "reads are not events");
        assert_eq!(e.resources, ["d-1"]);
        assert_eq!(e.seq, 2);
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn a_large_event_is_split_into_notifications_postgresql_accepts() {
        let event = Event {
            seq: 1,
            at: "2026-01-01T00:00:00Z".into(),
            kind: EventKind::Instances,
            action: "ec2:CreateTags".into(),
            account: Some("123456789012".into()),
            region: Some("us-east-1".into()),
            resources: (0..250).map(|i| format!("i-{i:017x}")).collect(),
        };
        let parts = split(event.clone());
        assert_eq!(parts.len(), 3);
        let rejoined: Vec<String> = parts.iter().flat_map(|p| p.resources.clone()).collect();
        assert_eq!(rejoined, event.resources);
        for part in &parts {
            let note = Notification {
                origin: "node-a".into(),
                event: part.clone(),
            };
            assert!(serde_json::to_string(&note).unwrap().len() < 8000);
        }
    }
}
