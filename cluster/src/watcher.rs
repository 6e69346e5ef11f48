//! Watching the other nodes' leases: `NodeUp`/`NodeDown` events, and cleaning up after a
//! node that died without leaving.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use crate::cluster::Inner;
use crate::presence::{self, Purge};
use crate::scripts::NODE_STATES;
use crate::{ClusterError, NodeId, clock};

/// A change in the set of live nodes, as seen by this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterEvent {
    /// The node took a lease (joined, or came back).
    NodeUp(NodeId),
    /// The node's lease expired or it left: its sessions are gone.
    NodeDown(NodeId),
}

/// Receives `ClusterEvent`s (`Cluster::watch_nodes`).
#[derive(Debug)]
pub struct NodeWatch {
    rx: broadcast::Receiver<ClusterEvent>,
}

impl NodeWatch {
    pub(crate) fn new(rx: broadcast::Receiver<ClusterEvent>) -> Self {
        Self { rx }
    }

    /// The next event; `None` once the cluster handle is gone. A watcher that fell more
    /// than 1024 events behind skips the oldest (with a warning).
    pub async fn recv(&mut self) -> Option<ClusterEvent> {
        loop {
            match self.rx.recv().await {
                Ok(event) => return Some(event),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "node watcher fell behind");
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

/// One node as `NODE_STATES` reports it.
#[derive(Debug)]
pub(crate) struct NodeState {
    pub(crate) node: NodeId,
    pub(crate) live: bool,
    /// The token of the process holding its lease, if one does.
    pub(crate) token: Option<String>,
    /// Still listed in `{prefix}nodes` (nobody has cleaned up after it).
    pub(crate) listed: bool,
}

/// Every listed node, and each of `extra`, with its liveness.
pub(crate) async fn node_states(
    inner: &Inner,
    extra: &[NodeId],
) -> Result<Vec<NodeState>, ClusterError> {
    let mut invocation = NODE_STATES.key(inner.keys.nodes());
    invocation.arg(inner.keys.prefix());
    for node in extra {
        invocation.arg(node.as_str());
    }
    let rows: Vec<(String, Option<String>, i64)> =
        inner.conn.script("NODE_STATES", &invocation).await?;
    Ok(rows
        .into_iter()
        .filter_map(|(node, token, listed)| {
            Some(NodeState {
                node: NodeId::new(&node).ok()?,
                live: token.is_some(),
                token,
                listed: listed == 1,
            })
        })
        .collect())
}

/// What this node believes about the others, between two looks.
///
/// A node counts as down only once its lease has been missing for a whole `grace` (the
/// lease): after Redis restarts empty every lease is gone at once, and the live nodes take
/// theirs again within a third of it, which must not read as every node dying. A node
/// that really died is reported within about twice the lease of its last refresh.
#[derive(Debug, Default)]
pub(crate) struct View {
    live: BTreeSet<NodeId>,
    reported_down: BTreeSet<NodeId>,
    /// Since when each node has been seen without a lease.
    missing_since: BTreeMap<NodeId, Instant>,
    /// The token of the process last seen holding each live node's lease.
    tokens: BTreeMap<NodeId, String>,
}

impl View {
    /// The nodes to ask about besides the listed ones: those we saw alive (another
    /// survivor may have cleaned one up and unlisted it before we noticed).
    fn known(&self) -> Vec<NodeId> {
        self.live.iter().cloned().collect()
    }

    /// The events that `states` implies, and the listed dead nodes to clean up.
    pub(crate) fn update(
        &mut self,
        me: &NodeId,
        states: Vec<NodeState>,
        now: Instant,
        grace: Duration,
    ) -> (Vec<ClusterEvent>, Vec<NodeId>) {
        let (mut events, mut dead) = (Vec::new(), Vec::new());
        let listed: BTreeSet<&NodeId> = states
            .iter()
            .filter(|s| s.listed)
            .map(|s| &s.node)
            .collect();
        self.reported_down.retain(|n| listed.contains(n));
        let seen: BTreeSet<&NodeId> = states.iter().map(|s| &s.node).collect();
        self.missing_since.retain(|n, _| seen.contains(n));
        for state in &states {
            if &state.node == me {
                continue;
            }
            if state.live {
                self.missing_since.remove(&state.node);
                self.reported_down.remove(&state.node);
                let restarted = match (&state.token, self.tokens.get(&state.node)) {
                    (Some(now), Some(before)) => now != before,
                    _ => false,
                };
                if let Some(token) = &state.token {
                    self.tokens.insert(state.node.clone(), token.clone());
                }
                if restarted && self.live.contains(&state.node) {
                    // Another process took the lease under the same id (a restart quicker
                    // than the grace): the old one is gone with everything it held.
                    events.push(ClusterEvent::NodeDown(state.node.clone()));
                    events.push(ClusterEvent::NodeUp(state.node.clone()));
                } else if self.live.insert(state.node.clone()) {
                    events.push(ClusterEvent::NodeUp(state.node.clone()));
                }
                continue;
            }
            let since = *self.missing_since.entry(state.node.clone()).or_insert(now);
            if now.duration_since(since) < grace {
                continue; // perhaps Redis lost the lease (a restart): give it time
            }
            let was_live = self.live.remove(&state.node);
            let first_seen_dead = state.listed && self.reported_down.insert(state.node.clone());
            if was_live || first_seen_dead {
                events.push(ClusterEvent::NodeDown(state.node.clone()));
            }
            if state.listed {
                dead.push(state.node.clone());
            }
        }
        (events, dead)
    }
}

/// Looks every `lease / 3` until aborted.
pub(crate) async fn run(inner: Arc<Inner>) {
    let mut view = View::default();
    loop {
        if let Err(err) = look(&inner, &mut view).await {
            tracing::warn!(error = %err, "watching nodes failed; retrying");
        }
        clock::sleep(inner.lease / 3).await;
    }
}

/// One look: events out, dead nodes cleaned up.
async fn look(inner: &Inner, view: &mut View) -> Result<(), ClusterError> {
    let states = node_states(inner, &view.known()).await?;
    let (events, dead) = view.update(&inner.node, states, clock::now(), inner.lease);
    for event in events {
        tracing::info!(?event, "cluster membership changed");
        // No receiver is fine: nobody is watching.
        let _ = inner.events.send(event);
    }
    for node in dead {
        if let Some(removed) = presence::purge(&inner.conn, &inner.keys, &node, Purge::Dead).await?
        {
            tracing::info!(%node, sessions = removed, "cleaned up after a dead node");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    const GRACE: Duration = Duration::from_secs(10);

    fn state(node: &str, live: bool, listed: bool) -> NodeState {
        NodeState {
            node: id(node),
            live,
            token: live.then(|| "process-1".to_owned()),
            listed,
        }
    }

    #[test]
    fn a_node_restarted_within_the_grace_is_reported_down_then_up() {
        let (me, mut view, t0) = (id("me"), View::default(), clock::now());
        look(&mut view, &me, vec![state("a", true, true)], t0, 0);
        // systemctl restart: the lease is held again, by another process, within seconds.
        let mut again = state("a", true, true);
        again.token = Some("process-2".to_owned());
        let (events, dead) = look(&mut view, &me, vec![again], t0, 2);
        assert_eq!(
            events,
            [
                ClusterEvent::NodeDown(id("a")),
                ClusterEvent::NodeUp(id("a"))
            ]
        );
        assert!(dead.is_empty(), "the new process's presence stays");
        let mut same = state("a", true, true);
        same.token = Some("process-2".to_owned());
        let (events, _) = look(&mut view, &me, vec![same], t0, 3);
        assert!(events.is_empty());
    }

    /// Looks at `states` at `t` seconds after `t0`.
    fn look(
        view: &mut View,
        me: &NodeId,
        states: Vec<NodeState>,
        t0: Instant,
        t: u64,
    ) -> (Vec<ClusterEvent>, Vec<NodeId>) {
        view.update(me, states, t0 + Duration::from_secs(t), GRACE)
    }

    #[test]
    fn a_lease_missing_for_less_than_the_grace_is_no_death() {
        // Redis restarted empty: the lease is back within the grace.
        let (me, mut view, t0) = (id("me"), View::default(), clock::now());
        look(&mut view, &me, vec![state("a", true, true)], t0, 0);
        let (events, dead) = look(&mut view, &me, vec![state("a", false, false)], t0, 1);
        assert!(events.is_empty() && dead.is_empty());
        let (events, _) = look(&mut view, &me, vec![state("a", false, false)], t0, 9);
        assert!(events.is_empty());
        let (events, _) = look(&mut view, &me, vec![state("a", true, true)], t0, 10);
        assert!(events.is_empty(), "still up: no NodeUp again");
        // Missing again later: the grace starts again.
        let (events, _) = look(&mut view, &me, vec![state("a", false, true)], t0, 30);
        assert!(events.is_empty());
        let (events, _) = look(&mut view, &me, vec![state("a", false, true)], t0, 40);
        assert_eq!(events, [ClusterEvent::NodeDown(id("a"))]);
    }

    #[test]
    fn up_then_down_is_reported_once_and_the_dead_node_cleaned() {
        let (me, mut view) = (id("me"), View::default());
        let (events, dead) = view.update(
            &me,
            vec![state("me", true, true), state("a", true, true)],
            clock::now(),
            Duration::ZERO,
        );
        assert_eq!(events, [ClusterEvent::NodeUp(id("a"))]);
        assert!(dead.is_empty());
        let (events, dead) = view.update(
            &me,
            vec![state("a", false, true)],
            clock::now(),
            Duration::ZERO,
        );
        assert_eq!(events, [ClusterEvent::NodeDown(id("a"))]);
        assert_eq!(dead, [id("a")]);
        // Cleanup failed and it is still listed: cleaned again, not reported again.
        let (events, dead) = view.update(
            &me,
            vec![state("a", false, true)],
            clock::now(),
            Duration::ZERO,
        );
        assert!(events.is_empty());
        assert_eq!(dead, [id("a")]);
    }

    #[test]
    fn a_node_unlisted_by_another_survivor_is_still_reported() {
        let (me, mut view) = (id("me"), View::default());
        view.update(
            &me,
            vec![state("a", true, true)],
            clock::now(),
            Duration::ZERO,
        );
        assert_eq!(view.known(), [id("a")]);
        let (events, dead) = view.update(
            &me,
            vec![state("a", false, false)],
            clock::now(),
            Duration::ZERO,
        );
        assert_eq!(events, [ClusterEvent::NodeDown(id("a"))]);
        assert!(dead.is_empty());
        assert!(view.known().is_empty());
    }

    #[test]
    fn a_stale_listed_node_is_reported_down_once() {
        let (me, mut view) = (id("me"), View::default());
        let (events, _) = view.update(
            &me,
            vec![state("old", false, true)],
            clock::now(),
            Duration::ZERO,
        );
        assert_eq!(events, [ClusterEvent::NodeDown(id("old"))]);
        let (events, _) = view.update(
            &me,
            vec![state("old", false, true)],
            clock::now(),
            Duration::ZERO,
        );
        assert!(events.is_empty());
        let (events, _) = view.update(&me, vec![], clock::now(), Duration::ZERO);
        assert!(events.is_empty());
    }
}
