//! The decisions about a shard's reading, pure: what the coordinator knows
//! of its shards in (where each one's reading is, whether its end is
//! committed, its lease, how its reader finished), what to do out. The
//! coordinator owns the reader tasks and the channels, and does what these
//! say.
//!
//! 1. A shard found by a listing is added once; a parent no longer listed
//!    (past the stream's retention) is not waited for.
//! 2. A waiting shard starts once every parent's end is committed (and, when
//!    sharing the stream, once this task holds its lease, not being asked to
//!    hand it off, and has looked at the table since it took the lease).
//! 3. A committed end makes a shard done, whatever its reader does.
//! 4. A reader that returned by itself read to the shard's end (the end
//!    marker may still be on its way) or reported a fatal error: ended. One
//!    that panicked is started again (a bug, counted).
//! 5. Sharing: a lost lease drops the shard (its claim is revoked); a
//!    hand-off stops the reader, and the lease goes once its last position
//!    is committed, or after the lease duration anyway.

use std::time::Duration;

use super::reader::IteratorStart;
use crate::checkpoint::{Checkpoint, ShardPosition, SourcePosition};
use crate::config::StartPosition;
use crate::source::lease::{LeaseState, Leases};

/// Where a shard's reading is (the coordinator's state without its tasks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Not read.
    Waiting,
    /// A reader task runs (or has just finished).
    Reading,
    /// Read to its end; the end is not committed yet.
    Ended,
    /// Its reader stops so that the lease can go to another task.
    HandingOff,
    /// Its end is committed.
    Done,
}

/// How a shard's reader task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Finish {
    /// Still running.
    Running,
    /// Returned by itself.
    Returned,
    /// Panicked.
    Panicked,
}

/// What becomes of one shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Nothing changes.
    Keep,
    /// Its end is committed: done.
    Done,
    /// Its reader read to the end (or failed, which ends the run): ended.
    Ended,
    /// Its reader panicked: count it and read again from the last position
    /// known (alone: the last batch handed over; sharing: the table's
    /// checkpoint, under a new claim, after a fresh look at the table).
    Restart,
    /// Its lease is lost: stop a reader at once, revoke the claim, wait.
    Drop,
    /// Its lease is to be handed off: ask the reader to stop.
    StopForHandOff,
    /// Its lease is to be handed off and nothing was read: hand it over now.
    HandOverNow,
    /// A hand-off is under way: see [`release`].
    HandingOff,
}

/// One known shard, as [`startable`] needs it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Known<'a> {
    /// The shard.
    pub id: &'a str,
    /// Where its reading is.
    pub phase: Phase,
    /// Its parents still listed.
    pub parents: &'a [String],
}

/// One shard of a listing.
#[derive(Debug, Clone, Copy)]
pub(super) struct Listed<'a> {
    /// The shard.
    pub id: &'a str,
    /// Its parent and adjacent parent (after a merge).
    pub parents: [Option<&'a str>; 2],
}

/// The shards of `listed` not known yet, each with the parents it waits for:
/// those listed too (the others are past retention, nothing left of them).
pub(super) fn discovered(
    listed: &[Listed<'_>],
    known: impl Fn(&str) -> bool,
) -> Vec<(String, Vec<String>)> {
    let mut found: Vec<(String, Vec<String>)> = Vec::new();
    for shard in listed {
        if known(shard.id) || found.iter().any(|(id, _)| id == shard.id) {
            continue;
        }
        let parents = shard
            .parents
            .into_iter()
            .flatten()
            .filter(|p| listed.iter().any(|l| l.id == *p))
            .map(str::to_string)
            .collect();
        found.push((shard.id.to_string(), parents));
    }
    found
}

/// Waiting shards whose parents are all done (and, with `leases`, whose
/// lease this task holds to read).
pub(super) fn startable(shards: &[Known<'_>], leases: Option<&Leases>) -> Vec<String> {
    let done = |id: &String| {
        shards
            .iter()
            .any(|k| k.id == id.as_str() && k.phase == Phase::Done)
    };
    shards
        .iter()
        .filter(|k| k.phase == Phase::Waiting)
        .filter(|k| k.parents.iter().all(done))
        .filter(|k| leases.is_none_or(|l| l.get(k.id) == Some(&LeaseState::Held)))
        .map(|k| k.id.to_string())
        .collect()
}

/// Alone on the stream: what becomes of a shard.
pub(super) fn settle(phase: Phase, end_committed: bool, finish: Finish) -> Step {
    match (phase, finish) {
        _ if end_committed => Step::Done,
        (Phase::Reading, Finish::Returned) => Step::Ended,
        (Phase::Reading, Finish::Panicked) => Step::Restart,
        _ => Step::Keep,
    }
}

/// Sharing the stream: what becomes of a shard this task holds `lease` of
/// (`None`: not, or no longer).
pub(super) fn share(
    phase: Phase,
    end_committed: bool,
    lease: Option<LeaseState>,
    finish: Finish,
) -> Step {
    if end_committed {
        return Step::Done;
    }
    match (phase, lease, finish) {
        (Phase::Reading | Phase::Ended | Phase::HandingOff, None, _) => Step::Drop,
        (Phase::Reading, Some(_), Finish::Returned) => Step::Ended,
        (Phase::Reading, Some(_), Finish::Panicked) => Step::Restart,
        (Phase::Reading, Some(LeaseState::HandOff), Finish::Running) => Step::StopForHandOff,
        (Phase::Waiting, Some(LeaseState::HandOff), _) => Step::HandOverNow,
        (Phase::HandingOff, Some(_), _) => Step::HandingOff,
        _ => Step::Keep,
    }
}

/// Whether a hand-off's lease goes now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Release {
    /// Not yet: the reader's last position is not committed.
    Wait,
    /// Its last position is committed (or it read nothing).
    Now,
    /// Not committed within the lease duration: anyway (the next owner reads
    /// again what was not committed).
    Late,
}

/// Whether the lease of a shard stopped at `until` (`None`: its reader has
/// not stopped yet) goes, the table showing `committed`, `elapsed` after
/// the hand-off began.
pub(super) fn release(
    until: Option<&ShardPosition>,
    committed: Option<&ShardPosition>,
    elapsed: Duration,
    timeout: Duration,
) -> Release {
    let committed_there = until.is_some_and(|u| {
        let at = SourcePosition::Shard(u.clone());
        committed.is_some_and(|c| !at.is_after(&SourcePosition::Shard(c.clone())))
            || (u.seq.is_none() && !u.end)
    });
    if committed_there {
        Release::Now
    } else if elapsed >= timeout {
        Release::Late
    } else {
        Release::Wait
    }
}

/// Whether a look at the table is still due for a shard leased `since`
/// when it was last loaded at `loaded`: one taken after the lease was.
pub(super) fn look_due<T: Ord>(loaded: Option<T>, since: Option<T>) -> bool {
    match (loaded, since) {
        (None, _) => true,
        (Some(l), Some(s)) => l <= s,
        (Some(_), None) => false,
    }
}

/// Where a shard starts: after its committed position; a child of a shard
/// this consumer read continues it from its first record; otherwise where
/// configured.
pub(super) fn start_at(
    own: Option<&ShardPosition>,
    parent_read: bool,
    configured: StartPosition,
) -> IteratorStart {
    match own {
        Some(ShardPosition { seq: Some(seq), .. }) => IteratorStart::After(seq.clone()),
        _ if configured == StartPosition::TrimHorizon || parent_read => IteratorStart::TrimHorizon,
        _ => match configured {
            StartPosition::Latest => IteratorStart::Latest,
            StartPosition::AtTimestamp(t) => IteratorStart::AtTimestamp(t),
            StartPosition::TrimHorizon => IteratorStart::TrimHorizon,
        },
    }
}

/// Where a reader that panicked starts again: after the last batch it
/// handed over (`at`), or where it started if it handed none.
pub(super) fn restart_from(start: IteratorStart, at: &ShardPosition) -> IteratorStart {
    at.seq.clone().map_or(start, IteratorStart::After)
}

/// Whether a shard keeps a draining run going: done, or read to its tip
/// (`caught_up`) with nothing waiting on it, lets it stop.
pub(super) fn drained(phase: Phase, caught_up: bool) -> bool {
    match phase {
        Phase::Done => true,
        Phase::Reading => caught_up,
        Phase::Waiting | Phase::Ended | Phase::HandingOff => false,
    }
}

/// Overlays the positions of `newer` that are further than `view`'s: both
/// are the table's checkpoint at some moment, and positions only advance.
pub(super) fn merge_newer(view: &mut Checkpoint, newer: &Checkpoint) {
    for (key, position) in &newer.sources {
        if view.get(key).is_none_or(|p| position.is_after(p)) {
            view.set(key, position.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Finish::{Panicked, Returned, Running};
    use LeaseState::{HandOff, Held};
    use Phase::{Done, Ended, HandingOff, Reading, Waiting};

    /// A shard: its number, phase and parents' numbers.
    type Shard = (usize, Phase, &'static [usize]);
    /// The leases held: shard number and state.
    type Holding = &'static [(usize, LeaseState)];
    /// A listing case: the listing, the shards known, what is found.
    type Listing = (
        &'static str,
        Vec<Listed<'static>>,
        Vec<&'static str>,
        Vec<(&'static str, Vec<&'static str>)>,
    );

    /// Shard `n`'s id.
    fn sid(n: usize) -> String {
        format!("shardId-{n:012}")
    }

    fn pos(seq: Option<&str>, end: bool) -> ShardPosition {
        ShardPosition {
            seq: seq.map(str::to_string),
            end,
        }
    }

    /// What [`startable`] picks of `shards` (number, phase, parents' numbers),
    /// with `leases` (number, state) when sharing.
    fn starts(
        shards: &[(usize, Phase, &[usize])],
        leases: Option<&[(usize, LeaseState)]>,
    ) -> Vec<usize> {
        let ids: Vec<(String, Vec<String>)> = shards
            .iter()
            .map(|(n, _, parents)| (sid(*n), parents.iter().map(|p| sid(*p)).collect()))
            .collect();
        let known: Vec<Known<'_>> = shards
            .iter()
            .zip(&ids)
            .map(|((_, phase, _), (id, parents))| Known {
                id,
                phase: *phase,
                parents,
            })
            .collect();
        let leases: Option<Leases> =
            leases.map(|l| l.iter().map(|(n, state)| (sid(*n), *state)).collect());
        startable(&known, leases.as_ref())
            .iter()
            .map(|id| shards.iter().find(|(n, ..)| sid(*n) == *id).unwrap().0)
            .collect()
    }

    #[test]
    fn a_shard_starts_once_every_parent_end_is_committed() {
        #[rustfmt::skip]
        let cases: &[(&str, &[Shard], &[usize])] = &[
            ("no parents: starts", &[(0, Waiting, &[])], &[0]),
            ("no parents, two shards: both start", &[(0, Waiting, &[]), (1, Waiting, &[])], &[0, 1]),
            ("one parent still read: waits", &[(0, Reading, &[]), (1, Waiting, &[0])], &[]),
            ("one parent ended, end not committed: waits", &[(0, Ended, &[]), (1, Waiting, &[0])], &[]),
            ("one parent waiting itself: only it starts", &[(0, Waiting, &[]), (1, Waiting, &[0])], &[0]),
            ("one parent handing off: waits", &[(0, HandingOff, &[]), (1, Waiting, &[0])], &[]),
            ("one parent's end committed: starts", &[(0, Done, &[]), (1, Waiting, &[0])], &[1]),
            ("merge, neither parent done: waits",
                &[(0, Ended, &[]), (1, Reading, &[]), (2, Waiting, &[0, 1])], &[]),
            ("merge, one parent done: waits",
                &[(0, Done, &[]), (1, Ended, &[]), (2, Waiting, &[0, 1])], &[]),
            ("merge, the other parent done: waits",
                &[(0, Reading, &[]), (1, Done, &[]), (2, Waiting, &[0, 1])], &[]),
            ("merge, both parents done: starts",
                &[(0, Done, &[]), (1, Done, &[]), (2, Waiting, &[0, 1])], &[2]),
            ("split, parent not done: neither child",
                &[(0, Ended, &[]), (1, Waiting, &[0]), (2, Waiting, &[0])], &[]),
            ("split, parent done: both children",
                &[(0, Done, &[]), (1, Waiting, &[0]), (2, Waiting, &[0])], &[1, 2]),
            ("a parent not known: waits", &[(1, Waiting, &[0])], &[]),
            ("grandchild waits for its parent, not only the grandparent",
                &[(0, Done, &[]), (1, Waiting, &[0]), (2, Waiting, &[1])], &[1]),
            ("already reading: not started twice", &[(0, Reading, &[])], &[]),
            ("ended: not started again", &[(0, Ended, &[])], &[]),
            ("done: not started again", &[(0, Done, &[])], &[]),
            ("handing off: not started again", &[(0, HandingOff, &[])], &[]),
        ];
        for (case, shards, expected) in cases {
            assert_eq!(starts(shards, None), *expected, "{case}");
        }
    }

    #[test]
    fn sharing_only_held_leases_start() {
        #[rustfmt::skip]
        let cases: &[(&str, &[Shard], Holding, &[usize])] = &[
            ("held: starts", &[(0, Waiting, &[])], &[(0, Held)], &[0]),
            ("not held: waits", &[(0, Waiting, &[])], &[], &[]),
            ("to be handed off: not started", &[(0, Waiting, &[])], &[(0, HandOff)], &[]),
            ("held, parent's end committed (by any task): starts",
                &[(0, Done, &[]), (1, Waiting, &[0])], &[(1, Held)], &[1]),
            ("held, parent not done: waits",
                &[(0, Waiting, &[]), (1, Waiting, &[0])], &[(1, Held)], &[]),
            ("held and already reading: not started twice", &[(0, Reading, &[])], &[(0, Held)], &[]),
        ];
        for (case, shards, leases, expected) in cases {
            assert_eq!(starts(shards, Some(leases)), *expected, "{case}");
        }
    }

    #[test]
    fn a_listing_adds_each_new_shard_once_with_the_parents_still_listed() {
        let (a, b, c, d) = (
            "shardId-000000000000",
            "shardId-000000000001",
            "shardId-000000000002",
            "shardId-000000000003",
        );
        let shard = |id: &'static str, p: Option<&'static str>, q: Option<&'static str>| Listed {
            id,
            parents: [p, q],
        };
        #[rustfmt::skip]
        let cases: Vec<Listing> = vec![
            ("no parents", vec![shard(a, None, None)], vec![], vec![(a, vec![])]),
            ("split: two children of one parent",
                vec![shard(a, None, None), shard(b, Some(a), None), shard(c, Some(a), None)], vec![],
                vec![(a, vec![]), (b, vec![a]), (c, vec![a])]),
            ("merge: one child of two parents",
                vec![shard(a, None, None), shard(b, None, None), shard(c, Some(a), Some(b))], vec![],
                vec![(a, vec![]), (b, vec![]), (c, vec![a, b])]),
            ("a parent past retention is not waited for",
                vec![shard(b, Some(a), None)], vec![], vec![(b, vec![])]),
            ("one merged parent past retention",
                vec![shard(b, None, None), shard(c, Some(a), Some(b))], vec![],
                vec![(b, vec![]), (c, vec![b])]),
            ("listed again: known shards are not added twice",
                vec![shard(a, None, None), shard(b, Some(a), None), shard(d, None, None)], vec![a, b],
                vec![(d, vec![])]),
            ("listed twice in one listing: added once",
                vec![shard(a, None, None), shard(a, None, None)], vec![], vec![(a, vec![])]),
        ];
        for (case, listed, known, expected) in cases {
            let found = discovered(&listed, |id| known.contains(&id));
            let expected: Vec<(String, Vec<String>)> = expected
                .into_iter()
                .map(|(id, ps)| (id.to_string(), ps.into_iter().map(str::to_string).collect()))
                .collect();
            assert_eq!(found, expected, "{case}");
        }
    }

    #[test]
    fn alone_a_finished_reader_ends_or_restarts() {
        #[rustfmt::skip]
        let cases = [
            // (case, phase, end committed, reader, step)
            ("reading on", Reading, false, Running, Step::Keep),
            ("returned after its end marker (or a fatal error it reported)", Reading, false, Returned, Step::Ended),
            ("panicked: started again, counted", Reading, false, Panicked, Step::Restart),
            ("end committed while reading", Reading, true, Running, Step::Done),
            ("end committed, reader returned", Reading, true, Returned, Step::Done),
            ("end committed, reader panicked", Reading, true, Panicked, Step::Done),
            ("ended, end committed", Ended, true, Running, Step::Done),
            ("ended, end not yet committed", Ended, false, Running, Step::Keep),
            ("waiting", Waiting, false, Running, Step::Keep),
            ("waiting, end committed by an earlier run", Waiting, true, Running, Step::Done),
            ("done stays done", Done, true, Running, Step::Done),
        ];
        for (case, phase, end, finish, step) in cases {
            assert_eq!(settle(phase, end, finish), step, "{case}");
        }
    }

    #[test]
    fn sharing_a_lost_lease_drops_the_shard_and_a_hand_off_stops_it() {
        #[rustfmt::skip]
        let cases = [
            // (case, phase, end committed, lease, reader, step)
            ("reading, lease lost", Reading, false, None, Running, Step::Drop),
            ("reading, lease lost as the reader returned", Reading, false, None, Returned, Step::Drop),
            ("reading, lease lost as the reader panicked", Reading, false, None, Panicked, Step::Drop),
            ("ended, lease lost", Ended, false, None, Running, Step::Drop),
            ("handing off, lease lost", HandingOff, false, None, Running, Step::Drop),
            ("waiting, no lease", Waiting, false, None, Running, Step::Keep),
            ("done, no lease", Done, false, None, Running, Step::Keep),
            ("end committed, lease lost", Reading, true, None, Running, Step::Done),
            ("end committed, held", Ended, true, Some(Held), Running, Step::Done),
            ("held, reading on", Reading, false, Some(Held), Running, Step::Keep),
            ("held, reader returned", Reading, false, Some(Held), Returned, Step::Ended),
            ("held, reader panicked: again from the checkpoint", Reading, false, Some(Held), Panicked, Step::Restart),
            ("hand-off asked, reader returned first", Reading, false, Some(HandOff), Returned, Step::Ended),
            ("hand-off asked, reader panicked first", Reading, false, Some(HandOff), Panicked, Step::Restart),
            ("hand-off asked while reading: stop it", Reading, false, Some(HandOff), Running, Step::StopForHandOff),
            ("hand-off asked, nothing read: over at once", Waiting, false, Some(HandOff), Running, Step::HandOverNow),
            ("hand-off under way", HandingOff, false, Some(HandOff), Running, Step::HandingOff),
            ("hand-off under way, held again", HandingOff, false, Some(Held), Running, Step::HandingOff),
            ("held, waiting: started by startable", Waiting, false, Some(Held), Running, Step::Keep),
            ("held, ended: waits for the end's commit", Ended, false, Some(Held), Running, Step::Keep),
            ("ended, hand-off asked: the end's commit frees it", Ended, false, Some(HandOff), Running, Step::Keep),
        ];
        for (case, phase, end, lease, finish, step) in cases {
            assert_eq!(share(phase, end, lease, finish), step, "{case}");
        }
    }

    #[test]
    fn a_hand_off_releases_once_committed_or_late() {
        let timeout = Duration::from_secs(30);
        let early = Duration::from_secs(1);
        #[rustfmt::skip]
        let cases = [
            // (case, until, committed, elapsed, release)
            ("reader not stopped yet", None, Some(pos(Some("5"), false)), early, Release::Wait),
            ("reader not stopped, late", None, None, timeout, Release::Late),
            ("stopped at 5, 5 committed", Some(pos(Some("5"), false)), Some(pos(Some("5"), false)), early, Release::Now),
            ("stopped at 5, 7 committed", Some(pos(Some("5"), false)), Some(pos(Some("7"), false)), early, Release::Now),
            ("stopped at 5, 3 committed", Some(pos(Some("5"), false)), Some(pos(Some("3"), false)), early, Release::Wait),
            ("stopped at 5, nothing committed", Some(pos(Some("5"), false)), None, early, Release::Wait),
            ("stopped at 5, 3 committed, late", Some(pos(Some("5"), false)), Some(pos(Some("3"), false)), timeout, Release::Late),
            ("stopped having read nothing", Some(pos(None, false)), None, early, Release::Now),
        ];
        for (case, until, committed, elapsed, release) in cases {
            assert_eq!(
                super::release(until.as_ref(), committed.as_ref(), elapsed, timeout),
                release,
                "{case}"
            );
        }
    }

    #[test]
    fn a_leased_shard_waits_for_a_look_at_the_table_taken_after_the_lease() {
        for (case, loaded, since, due) in [
            ("never loaded", None, Some(5), true),
            ("never loaded, not leased", None, None, true),
            ("loaded before the lease", Some(4), Some(5), true),
            ("loaded as the lease was taken", Some(5), Some(5), true),
            ("loaded after the lease", Some(6), Some(5), false),
            ("not leased", Some(6), None, false),
        ] {
            assert_eq!(look_due(loaded, since), due, "{case}");
        }
    }

    #[test]
    fn a_shard_starts_after_its_checkpoint_or_where_configured() {
        use IteratorStart::{After, AtTimestamp, Latest, TrimHorizon};
        use StartPosition as C;
        #[rustfmt::skip]
        let cases = [
            // (case, own, parent read, configured, start)
            ("committed at 5", Some(pos(Some("5"), false)), false, C::Latest, After("5".into())),
            ("committed at 5, parent read", Some(pos(Some("5"), true)), true, C::TrimHorizon, After("5".into())),
            ("nothing, latest", None, false, C::Latest, Latest),
            ("nothing, at a time", None, false, C::AtTimestamp(7), AtTimestamp(7)),
            ("nothing, trim horizon", None, false, C::TrimHorizon, TrimHorizon),
            ("child of a read parent: from its first record", None, true, C::Latest, TrimHorizon),
            ("child of a read parent, at a time", None, true, C::AtTimestamp(7), TrimHorizon),
            ("a position without a sequence number", Some(pos(None, false)), false, C::Latest, Latest),
        ];
        for (case, own, parent_read, configured, start) in cases {
            assert_eq!(
                start_at(own.as_ref(), parent_read, configured),
                start,
                "{case}"
            );
        }
    }

    #[test]
    fn a_panicked_reader_restarts_after_its_last_batch() {
        use IteratorStart::{After, Latest};
        for (case, start, handed, again) in [
            (
                "handed up to 9",
                After("3".into()),
                pos(Some("9"), false),
                After("9".into()),
            ),
            (
                "handed nothing",
                After("3".into()),
                pos(None, false),
                After("3".into()),
            ),
            (
                "handed nothing, started latest",
                Latest,
                pos(None, false),
                Latest,
            ),
        ] {
            assert_eq!(restart_from(start, &handed), again, "{case}");
        }
    }

    #[test]
    fn a_draining_run_stops_only_when_no_shard_waits() {
        for (phase, caught_up, done) in [
            (Done, false, true),
            (Reading, true, true),
            (Reading, false, false),
            (Waiting, true, false),
            (Ended, true, false),
            (HandingOff, true, false),
        ] {
            assert_eq!(drained(phase, caught_up), done, "{phase:?}, {caught_up}");
        }
    }

    #[test]
    fn a_newer_checkpoint_only_moves_positions_forward() {
        let mut view = Checkpoint::new();
        view.set("a", SourcePosition::Shard(pos(Some("5"), false)));
        view.set("b", SourcePosition::Shard(pos(Some("5"), false)));
        let mut newer = Checkpoint::new();
        newer.set("a", SourcePosition::Shard(pos(Some("3"), false)));
        newer.set("b", SourcePosition::Shard(pos(Some("5"), true)));
        newer.set("c", SourcePosition::Shard(pos(Some("1"), false)));
        merge_newer(&mut view, &newer);
        assert_eq!(
            view.get("a"),
            Some(&SourcePosition::Shard(pos(Some("5"), false)))
        );
        assert_eq!(
            view.get("b"),
            Some(&SourcePosition::Shard(pos(Some("5"), true)))
        );
        assert_eq!(
            view.get("c"),
            Some(&SourcePosition::Shard(pos(Some("1"), false)))
        );
    }
}
