//! One soak call: its plan, drawn from the run's seed and its index alone (so a run is
//! reproducible whatever the timing), and its two sides run together.

use std::net::SocketAddr;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use signaling_protocol::{CallId, UserName};
use tokio::time::Instant;

use super::session::Session;
use super::side::{self, Role, SideOutcome, SidePlan, SocketDrop};
use bench_support::BenchError;

/// Drops per side and call, at most (each side draws 0 to this many).
const MAX_DROPS: u32 = 2;
/// The longest time a side stops reading before it drops its socket, milliseconds.
const MAX_DEAF_MS: u64 = 1000;
/// The longest pause between a drop and the resume, milliseconds.
const MAX_PAUSE_MS: u64 = 300;
/// How long past its planned length a call may take before it counts as failed.
const GRACE: Duration = Duration::from_secs(60);

/// What both sides of one call send and when they drop their sockets.
#[derive(Debug, Clone)]
pub struct CallPlan {
    /// The caller's side.
    pub caller: SidePlan,
    /// The callee's side.
    pub callee: SidePlan,
}

impl CallPlan {
    /// The plan of call number `index` of a run seeded with `seed`, lasting about
    /// `length`: each side sends `messages` candidates and `datagrams` datagrams and
    /// drops its socket 0 to 2 times at random moments while it sends.
    pub fn new(
        seed: u64,
        index: usize,
        length: Duration,
        messages: u64,
        datagrams: u64,
    ) -> Result<CallPlan, BenchError> {
        let mut rng =
            StdRng::seed_from_u64(seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let bad_name = |e| BenchError::Setup(format!("call {index}: {e}"));
        let call_id = CallId::new(format!("soak-{index}")).map_err(bad_name)?;
        let (caller, callee) = (format!("soak-a{index}"), format!("soak-b{index}"));
        let callee_name = UserName::new(callee.clone()).map_err(bad_name)?;
        let deadline = Instant::now() + length + GRACE;
        // Drops fall while the side sends, so that each one happens before the call ends.
        let talking = side::MESSAGE_EVERY * messages as u32;
        let mut side = |role, user| SidePlan {
            role,
            user,
            call_id: call_id.clone(),
            messages,
            datagrams,
            drops: drops(&mut rng, talking),
            deadline,
        };
        Ok(CallPlan {
            caller: side(
                Role::Caller {
                    callee: callee_name,
                },
                caller,
            ),
            callee: side(Role::Callee, callee),
        })
    }
}

/// 0 to [`MAX_DROPS`] drops within `within`, in order.
fn drops(rng: &mut StdRng, within: Duration) -> Vec<SocketDrop> {
    let count = rng.random_range(0..=MAX_DROPS);
    let within_ms = within.as_millis().max(1) as u64;
    let mut drops: Vec<_> = (0..count)
        .map(|_| SocketDrop {
            at: Duration::from_millis(rng.random_range(0..within_ms)),
            deaf: Duration::from_millis(rng.random_range(0..=MAX_DEAF_MS)),
            pause: Duration::from_millis(rng.random_range(0..=MAX_PAUSE_MS)),
        })
        .collect();
    drops.sort_by_key(|d| d.at);
    drops
}

/// What both sides of a call sent and received.
#[derive(Debug)]
pub struct CallOutcome {
    /// The caller's side.
    pub caller: SideOutcome,
    /// The callee's side.
    pub callee: SideOutcome,
}

/// Runs both sides of `plan` against the server at `server`. The callee signs in first,
/// so that the invite finds it; a side that fails ends the other.
pub async fn run(server: SocketAddr, plan: CallPlan) -> Result<CallOutcome, BenchError> {
    let callee_session = Session::open(server, &plan.callee.user).await?;
    let callee = tokio::spawn(side::run(callee_session, plan.callee));
    let caller = match Session::open(server, &plan.caller.user).await {
        Ok(session) => side::run(session, plan.caller).await,
        Err(e) => Err(e),
    };
    if caller.is_err() {
        callee.abort();
    }
    let caller = caller?;
    Ok(CallOutcome {
        caller,
        callee: callee.await??,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_depends_on_the_seed_and_the_index_only() {
        let length = Duration::from_secs(18);
        let plan = |seed, index| CallPlan::new(seed, index, length, 126, 252).expect("plan");
        let talking = side::MESSAGE_EVERY * 126;
        let drops = |p: &CallPlan| (p.caller.drops.clone(), p.callee.drops.clone());
        assert_eq!(drops(&plan(7, 3)), drops(&plan(7, 3)));
        let differ = (0..20).any(|i| drops(&plan(7, i)) != drops(&plan(8, i)));
        assert!(differ, "another seed draws other drops");
        for i in 0..50 {
            let p = plan(1, i);
            for d in p.caller.drops.iter().chain(&p.callee.drops) {
                assert!(d.at < talking, "a drop after the side's last message");
                assert!(d.deaf <= Duration::from_millis(MAX_DEAF_MS));
                assert!(d.pause <= Duration::from_millis(MAX_PAUSE_MS));
            }
        }
    }
}
