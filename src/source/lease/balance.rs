//! The balancing decision, a pure function: the leases and live workers as
//! one worker sees them in, what that worker should do out.
//!
//! Every worker aims at its fair share, `ceil(shards / live workers)`:
//!
//! 1. Hand-off requests addressed to it (on leases it owns) are granted when
//!    that leaves the two workers at least as balanced as before (the owner
//!    holds at least two more than the asker), and declined otherwise, so
//!    two workers never pass a shard back and forth.
//! 2. Below its share, it takes free leases (no owner, or released) and
//!    expired ones (counter unchanged for a lease duration) first.
//! 3. Still below, it asks the most loaded worker for one of its leases,
//!    again only when that worker holds at least two more than it does: the
//!    owner then stops reading the shard, commits, and transfers the lease.
//! 4. A request the owner neither grants nor declines for `steal_after` (an
//!    owner that no longer answers but still renews) becomes a steal.
//!
//! A lease with a pending request counts for the asker already, so
//! requests in flight are not repeated, and the owner's grants add up to
//! what the asker asked for.

use std::collections::BTreeMap;
use std::time::Duration;

/// One shard lease as seen in the lease table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The shard.
    pub shard: String,
    /// The worker holding it (`None`: free).
    pub owner: Option<String>,
    /// Its counter has not moved for a lease duration (never true for the
    /// deciding worker's own leases).
    pub expired: bool,
    /// A worker that asked for it.
    pub handoff_to: Option<String>,
    /// How long that request has been seen pending.
    pub asked_for: Duration,
}

/// What one worker knows when it decides.
#[derive(Debug, Clone)]
pub struct View<'a> {
    /// The deciding worker.
    pub me: &'a str,
    /// Workers whose heartbeat is alive, the deciding worker among them.
    pub workers: &'a [String],
    /// The leases of every shard to be read (not finished).
    pub leases: &'a [Lease],
    /// How long an unanswered hand-off request waits before a steal.
    pub steal_after: Duration,
}

/// What to do about one lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Take a free or expired lease.
    Take {
        /// The shard.
        shard: String,
        /// Its owner when it expired (`None`: it was free).
        expired_owner: Option<String>,
    },
    /// Ask `owner` to hand the shard over.
    Ask {
        /// The shard.
        shard: String,
        /// Its owner.
        owner: String,
    },
    /// Stop reading the shard, commit, then transfer the lease to `to`.
    HandOff {
        /// The shard.
        shard: String,
        /// The asker.
        to: String,
    },
    /// Clear a request that would not improve the balance (or whose asker
    /// is gone).
    Decline {
        /// The shard.
        shard: String,
        /// The asker.
        asker: String,
    },
    /// Take a lease whose owner left a request unanswered too long.
    Steal {
        /// The shard.
        shard: String,
        /// Its owner.
        owner: String,
    },
}

/// The fair share of one of `workers` workers over `shards` shards.
pub fn fair_share(shards: usize, workers: usize) -> usize {
    shards.div_ceil(workers.max(1))
}

/// Whether `worker` has a live heartbeat (the deciding worker has).
fn live(view: &View<'_>, worker: &str) -> bool {
    worker == view.me || view.workers.iter().any(|w| w == worker)
}

/// Who holds a lease: its owner while live and renewing; nobody when it is
/// free or expired (the deciding worker's own never expire to it).
fn held<'a>(view: &View<'_>, lease: &'a Lease) -> Option<&'a str> {
    match &lease.owner {
        Some(o) if o == view.me => Some(o.as_str()),
        Some(o) if live(view, o) && !lease.expired => Some(o.as_str()),
        _ => None,
    }
}

/// What `view.me` should do, in order.
pub fn plan<'a>(view: &View<'a>) -> Vec<Action> {
    let me = view.me;
    let live = |w: &str| live(view, w);
    let held = |l| held(view, l);
    // A lease counts for its (live, unexpired) owner, or for the live worker
    // it is being handed to.
    let mut load: BTreeMap<&str, usize> = view.workers.iter().map(|w| (w.as_str(), 0)).collect();
    load.entry(me).or_insert(0);
    let bound_for = |l: &'a Lease| match (held(l), &l.handoff_to) {
        (Some(_), Some(to)) if live(to) => Some(to.as_str()),
        (owner, _) => owner,
    };
    for lease in view.leases {
        if let Some(w) = bound_for(lease) {
            *load.entry(w).or_insert(0) += 1;
        }
    }
    let fair = fair_share(view.leases.len(), load.len());
    let mut actions = Vec::new();

    // 1. Requests to me.
    for lease in view.leases.iter().filter(|l| held(l) == Some(me)) {
        let Some(asker) = &lease.handoff_to else {
            continue;
        };
        if !live(asker) || asker == me {
            actions.push(Action::Decline {
                shard: lease.shard.clone(),
                asker: asker.clone(),
            });
            continue;
        }
        // The lease counts for the asker now; without it:
        let mine = load[me] + 1;
        let theirs = load[asker.as_str()] - 1;
        if mine >= theirs + 2 {
            actions.push(Action::HandOff {
                shard: lease.shard.clone(),
                to: asker.clone(),
            });
        } else {
            *load.entry(me).or_insert(0) += 1;
            *load.entry(asker.as_str()).or_insert(1) -= 1;
            actions.push(Action::Decline {
                shard: lease.shard.clone(),
                asker: asker.clone(),
            });
        }
    }

    // 4. My requests left unanswered.
    for lease in view.leases {
        if let (Some(owner), Some(to)) = (held(lease), &lease.handoff_to)
            && to == me
            && owner != me
            && lease.asked_for >= view.steal_after
        {
            actions.push(Action::Steal {
                shard: lease.shard.clone(),
                owner: owner.to_string(),
            });
        }
    }

    // 2. Free and expired leases, in an order of this worker's own, so that
    // workers starting together mostly try different ones.
    let mut mine = load[me];
    let mut free: Vec<&Lease> = view.leases.iter().filter(|l| held(l).is_none()).collect();
    free.sort_by_key(|l| (spread(me, &l.shard), l.shard.clone()));
    for lease in free {
        if mine >= fair {
            break;
        }
        actions.push(Action::Take {
            shard: lease.shard.clone(),
            expired_owner: lease.owner.clone(),
        });
        mine += 1;
    }

    // 3. Ask the most loaded workers.
    let mut asked: Vec<&str> = Vec::new();
    while mine < fair {
        let busiest = load
            .iter()
            .filter(|(w, _)| **w != me)
            .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)));
        let Some((&owner, &count)) = busiest else {
            break;
        };
        if count < mine + 2 {
            break;
        }
        let candidate = view.leases.iter().find(|l| {
            held(l) == Some(owner) && l.handoff_to.is_none() && !asked.contains(&l.shard.as_str())
        });
        match candidate {
            Some(lease) => {
                actions.push(Action::Ask {
                    shard: lease.shard.clone(),
                    owner: owner.to_string(),
                });
                asked.push(&lease.shard);
                mine += 1;
                *load.entry(owner).or_insert(1) -= 1;
            }
            // Everything it holds is already on its way somewhere.
            None => {
                load.remove(owner);
            }
        }
    }
    actions
}

/// A stable per-worker order of shards.
fn spread(worker: &str, shard: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(format!("{worker}\n{shard}").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEAL_AFTER: Duration = Duration::from_secs(30);

    fn lease(shard: usize, owner: Option<&str>) -> Lease {
        Lease {
            shard: format!("shardId-{shard:012}"),
            owner: owner.map(str::to_string),
            expired: false,
            handoff_to: None,
            asked_for: Duration::ZERO,
        }
    }

    /// Leases of `counts[i]` shards per worker `w{i}`, then `free` free ones.
    fn leases(counts: &[usize], free: usize) -> Vec<Lease> {
        let mut out = Vec::new();
        for (w, n) in counts.iter().enumerate() {
            for _ in 0..*n {
                out.push(lease(out.len(), Some(&format!("w{w}"))));
            }
        }
        for _ in 0..free {
            out.push(lease(out.len(), None));
        }
        out
    }

    fn workers(n: usize) -> Vec<String> {
        (0..n).map(|w| format!("w{w}")).collect()
    }

    fn decide(me: &str, workers: &[String], leases: &[Lease]) -> Vec<Action> {
        plan(&View {
            me,
            workers,
            leases,
            steal_after: STEAL_AFTER,
        })
    }

    fn count(actions: &[Action], kind: fn(&Action) -> bool) -> usize {
        actions.iter().filter(|a| kind(a)).count()
    }

    fn takes(a: &Action) -> bool {
        matches!(a, Action::Take { .. })
    }

    fn asks(a: &Action) -> bool {
        matches!(a, Action::Ask { .. })
    }

    #[test]
    fn fair_share_rounds_up() {
        for (shards, workers, share) in [
            (8, 3, 3),
            (8, 2, 4),
            (8, 1, 8),
            (2, 3, 1),
            (0, 2, 0),
            (5, 0, 5),
        ] {
            assert_eq!(
                fair_share(shards, workers),
                share,
                "{shards} over {workers}"
            );
        }
    }

    #[test]
    fn free_leases_are_taken_up_to_the_fair_share() {
        let ws = workers(3);
        let all = leases(&[], 8);
        let actions = decide("w0", &ws, &all);
        assert_eq!(actions.len(), 3, "{actions:?}");
        assert_eq!(count(&actions, takes), 3);
        // Another worker prefers other shards first.
        let other = decide("w1", &ws, &all);
        assert_ne!(actions, other);
        // Alone, a worker takes every shard.
        assert_eq!(count(&decide("w0", &workers(1), &all), takes), 8);
    }

    #[test]
    fn a_balanced_spread_stays_as_it_is() {
        for counts in [[3, 3, 2], [3, 2, 3], [2, 3, 3]] {
            let all = leases(&counts, 0);
            for w in 0..3 {
                let me = format!("w{w}");
                assert_eq!(decide(&me, &workers(3), &all), [], "{counts:?} as {me}");
            }
        }
    }

    #[test]
    fn expired_leases_of_a_dead_worker_are_taken_first() {
        // w2 died: its heartbeat is gone and its leases expire.
        let mut all = leases(&[3, 3, 2], 0);
        for l in all.iter_mut().filter(|l| l.owner.as_deref() == Some("w2")) {
            l.expired = true;
        }
        let live = workers(2);
        let actions = decide("w0", &live, &all);
        assert_eq!(
            actions,
            [Action::Take {
                shard: actions_shard(&actions[0]),
                expired_owner: Some("w2".into())
            }]
        );
        assert!(
            all[6..]
                .iter()
                .any(|l| l.shard == actions_shard(&actions[0]))
        );
    }

    fn actions_shard(a: &Action) -> String {
        match a {
            Action::Take { shard, .. }
            | Action::Ask { shard, .. }
            | Action::HandOff { shard, .. }
            | Action::Decline { shard, .. }
            | Action::Steal { shard, .. } => shard.clone(),
        }
    }

    #[test]
    fn a_joining_worker_asks_the_busiest_for_its_share() {
        // w0 has all 8; w1 and w2 start.
        let all = leases(&[8], 0);
        let ws = workers(3);
        let actions = decide("w1", &ws, &all);
        assert_eq!(count(&actions, asks), 3, "{actions:?}");
        assert!(
            actions
                .iter()
                .all(|a| matches!(a, Action::Ask { owner, .. } if owner == "w0"))
        );
        // With w1's requests pending, w2 asks only while w0 stays ahead.
        let mut pending = all.clone();
        for a in &actions {
            let shard = actions_shard(a);
            let l = pending.iter_mut().find(|l| l.shard == shard).unwrap();
            l.handoff_to = Some("w1".into());
        }
        // Two more make 3, 3 and 2: as even as 8 over 3 gets.
        let second = decide("w2", &ws, &pending);
        assert_eq!(count(&second, asks), 2, "{second:?}");
        let asked: Vec<String> = second.iter().map(actions_shard).collect();
        assert!(asked.iter().all(|s| {
            !pending
                .iter()
                .any(|l| &l.shard == s && l.handoff_to.is_some())
        }));
        // Nothing is left to ask for: w1 waits on its requests.
        assert_eq!(decide("w1", &ws, &pending), []);
    }

    #[test]
    fn the_owner_grants_requests_that_improve_the_balance_and_declines_the_rest() {
        // w0 holds 8; w1 asked for 4 (its share of 8 over 2).
        let mut all = leases(&[8], 0);
        for l in &mut all[..4] {
            l.handoff_to = Some("w1".into());
        }
        let actions = decide("w0", &workers(2), &all);
        assert_eq!(actions.len(), 4, "{actions:?}");
        assert!(
            actions
                .iter()
                .all(|a| matches!(a, Action::HandOff { to, .. } if to == "w1"))
        );

        // A stale request on a balanced spread is declined, not granted.
        let mut all = leases(&[3, 3, 2], 0);
        all[0].handoff_to = Some("w2".into());
        assert_eq!(
            decide("w0", &workers(3), &all),
            [Action::Decline {
                shard: all[0].shard.clone(),
                asker: "w2".into()
            }]
        );

        // So is a request from a worker that is gone.
        let mut all = leases(&[4, 4], 0);
        all[0].handoff_to = Some("w9".into());
        assert_eq!(
            decide("w0", &workers(2), &all),
            [Action::Decline {
                shard: all[0].shard.clone(),
                asker: "w9".into()
            }]
        );
    }

    #[test]
    fn an_unanswered_request_becomes_a_steal() {
        let mut all = leases(&[7, 1], 0);
        all[0].handoff_to = Some("w1".into());
        all[0].asked_for = STEAL_AFTER - Duration::from_secs(1);
        let ws = workers(2);
        // Still waiting: w1 counts the request and asks for two more.
        let waiting = decide("w1", &ws, &all);
        assert_eq!(count(&waiting, asks), 2, "{waiting:?}");
        all[0].asked_for = STEAL_AFTER;
        let late = decide("w1", &ws, &all);
        assert_eq!(
            late[0],
            Action::Steal {
                shard: all[0].shard.clone(),
                owner: "w0".into()
            }
        );
    }

    #[test]
    fn released_leases_go_to_the_workers_below_their_share() {
        // w1 left gracefully: its 4 leases are free; w0 alone takes them all.
        let all = leases(&[4], 4);
        let actions = decide("w0", &workers(1), &all);
        assert_eq!(count(&actions, takes), 4, "{actions:?}");
        assert!(actions.iter().all(|a| matches!(
            a,
            Action::Take {
                expired_owner: None,
                ..
            }
        )));
    }

    #[test]
    fn no_worker_asks_from_one_only_one_ahead() {
        // 3 and 2 over two workers is as balanced as 7 shards get.
        let all = leases(&[4, 3], 0);
        assert_eq!(decide("w1", &workers(2), &all), []);
        let all = leases(&[5, 2], 0);
        assert_eq!(count(&decide("w1", &workers(2), &all), asks), 1);
    }
}
