//! What the leader of a partition knows about its followers: each one's log end offset (the
//! offset it fetches from next) and when it was last caught up. From that come the high
//! watermark (the smallest log end offset over the in-sync replicas), which followers have
//! fallen out of sync, and which have caught up enough to rejoin.
//!
//! Pure state, no I/O: the caller holds the partition's replica lock and passes the clock.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::metadata::PartitionImage;

/// One follower, as seen from the leader.
#[derive(Debug, Clone)]
struct FollowerProgress {
    /// The offset it asked for in its last fetch; `None` until it fetched from this leader.
    log_end_offset: Option<i64>,
    /// The last time its log end offset reached the leader's.
    last_caught_up: Instant,
    /// The leader's log end offset when this follower last fetched (Kafka's
    /// `lastFetchLeaderLogEndOffset`): reaching it on the next fetch counts as caught up.
    leader_end_at_last_fetch: i64,
    /// The log start offset it sent in its last fetch; `None` until then.
    log_start_offset: Option<i64>,
}

/// A partition led by this broker, in one leader epoch.
#[derive(Debug, Clone)]
pub struct LeaderState {
    pub node_id: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub replicas: Vec<i32>,
    /// The in-sync replicas committed in the metadata (the leader included).
    pub isr: Vec<i32>,
    /// The log end offset when this leader epoch began: a follower must reach it to join.
    pub epoch_start_offset: i64,
    followers: HashMap<i32, FollowerProgress>,
    /// An ISR change proposed but not yet seen in the metadata, and when it was proposed.
    pub pending_isr_change: Option<Instant>,
}

impl LeaderState {
    /// The state of a leader that just took over `p`: every follower starts caught up (as
    /// in Kafka), with an unknown log end offset until its first fetch.
    pub fn new(
        node_id: i32,
        p: &PartitionImage,
        epoch_start_offset: i64,
        now: Instant,
    ) -> LeaderState {
        let mut state = LeaderState {
            node_id,
            epoch_start_offset,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            replicas: Vec::new(),
            isr: Vec::new(),
            followers: HashMap::new(),
            pending_isr_change: None,
        };
        state.update(p, now);
        state
    }

    /// Takes the replicas and ISR of a newer image of the same leader epoch.
    pub fn update(&mut self, p: &PartitionImage, now: Instant) {
        if p.partition_epoch != self.partition_epoch {
            self.pending_isr_change = None;
        }
        self.partition_epoch = p.partition_epoch;
        self.replicas = p.replicas.clone();
        // A follower that left the ISR (fenced, or out of sync) must prove again, by its
        // own next fetch, how far its log reaches: it may have restarted without the tail
        // it had (unflushed data lost with the machine).
        for gone in self.isr.iter().filter(|id| !p.isr.contains(id)) {
            if let Some(f) = self.followers.get_mut(gone) {
                f.log_end_offset = None;
            }
        }
        self.isr = p.isr.clone();
        let me = self.node_id;
        self.followers.retain(|id, _| p.replicas.contains(id));
        for id in p.replicas.iter().filter(|id| **id != me) {
            self.followers.entry(*id).or_insert(FollowerProgress {
                log_end_offset: None,
                last_caught_up: now,
                leader_end_at_last_fetch: -1,
                log_start_offset: None,
            });
        }
    }

    /// Whether `id` is a replica of this partition other than the leader.
    pub fn is_follower(&self, id: i32) -> bool {
        self.followers.contains_key(&id)
    }

    /// Records a fetch by follower `id` from `fetch_offset` while the leader's log ends at
    /// `leader_end`.
    pub fn record_fetch(&mut self, id: i32, fetch_offset: i64, leader_end: i64, now: Instant) {
        let Some(f) = self.followers.get_mut(&id) else {
            return;
        };
        if fetch_offset >= leader_end || fetch_offset >= f.leader_end_at_last_fetch.max(0) {
            f.last_caught_up = now;
        }
        f.log_end_offset = Some(fetch_offset);
        f.leader_end_at_last_fetch = leader_end;
    }

    /// Records the log start offset follower `id` sent with its fetch.
    pub fn record_log_start(&mut self, id: i32, log_start_offset: i64) {
        if let Some(f) = self.followers.get_mut(&id) {
            f.log_start_offset = (log_start_offset >= 0).then_some(log_start_offset);
        }
    }

    /// The low watermark (Kafka's `lowWatermarkIfLeader`): the smallest log start offset over
    /// the leader (`leader_start`) and the live followers whose log start is known. A
    /// DeleteRecords is done once it reaches the requested offset.
    pub fn low_watermark(&self, leader_start: i64, is_live: impl Fn(i32) -> bool) -> i64 {
        self.followers
            .iter()
            .filter(|(id, _)| is_live(**id))
            .filter_map(|(_, f)| f.log_start_offset)
            .fold(leader_start, i64::min)
    }

    /// The high watermark: the smallest log end offset over the ISR (the leader's own is
    /// `leader_end`). `None` while an in-sync follower has not fetched from this leader yet.
    pub fn high_watermark(&self, leader_end: i64) -> Option<i64> {
        let mut hw = leader_end;
        for id in &self.isr {
            if *id == self.node_id {
                continue;
            }
            let end = self.followers.get(id).and_then(|f| f.log_end_offset)?;
            hw = hw.min(end);
        }
        Some(hw)
    }

    /// In-sync followers that have not caught up for longer than `max_lag`.
    pub fn out_of_sync(&self, now: Instant, max_lag: Duration) -> Vec<i32> {
        self.isr
            .iter()
            .copied()
            .filter(|id| *id != self.node_id)
            .filter(|id| {
                self.followers
                    .get(id)
                    .is_some_and(|f| now.duration_since(f.last_caught_up) > max_lag)
            })
            .collect()
    }

    /// Followers outside the ISR whose log reaches `high_watermark` and the start of this
    /// leader's epoch (`epoch_start`), so they hold every committed record: Kafka's
    /// condition for joining the ISR.
    pub fn ready_to_join(&self, high_watermark: i64) -> Vec<i32> {
        let epoch_start = self.epoch_start_offset;
        let mut ready: Vec<i32> = self
            .followers
            .iter()
            .filter(|(id, _)| !self.isr.contains(id))
            .filter(|(_, f)| {
                f.log_end_offset
                    .is_some_and(|end| end >= high_watermark && end >= epoch_start)
            })
            .map(|(id, _)| *id)
            .collect();
        ready.sort_unstable();
        ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition(isr: Vec<i32>) -> PartitionImage {
        PartitionImage {
            leader: 1,
            leader_epoch: 3,
            replicas: vec![1, 2, 3],
            isr,
            partition_epoch: 7,
        }
    }

    #[test]
    fn the_high_watermark_is_the_smallest_end_over_the_isr() {
        let t0 = Instant::now();
        let mut s = LeaderState::new(1, &partition(vec![1, 2, 3]), 0, t0);
        assert_eq!(s.high_watermark(100), None, "followers not heard from yet");
        s.record_fetch(2, 90, 100, t0);
        assert_eq!(s.high_watermark(100), None);
        s.record_fetch(3, 80, 100, t0);
        assert_eq!(s.high_watermark(100), Some(80));
        s.record_fetch(3, 100, 100, t0);
        assert_eq!(s.high_watermark(100), Some(90));
        // Out of the ISR, a follower no longer holds the watermark back.
        s.update(&partition(vec![1, 3]), t0);
        assert_eq!(s.high_watermark(100), Some(100));
        let alone = LeaderState::new(1, &partition(vec![1]), 0, t0);
        assert_eq!(alone.high_watermark(42), Some(42));
    }

    #[test]
    fn a_follower_that_stops_catching_up_leaves_and_one_that_catches_up_rejoins() {
        let t0 = Instant::now();
        let lag = Duration::from_secs(10);
        let mut s = LeaderState::new(1, &partition(vec![1, 2, 3]), 0, t0);
        s.record_fetch(2, 100, 100, t0);
        s.record_fetch(3, 50, 100, t0);
        let t1 = t0 + Duration::from_secs(5);
        s.record_fetch(2, 120, 120, t1);
        // Follower 3 reached the leader's end at its previous fetch: still caught up.
        s.record_fetch(3, 100, 120, t1);
        let t2 = t0 + Duration::from_secs(16);
        s.record_fetch(2, 130, 130, t2);
        assert_eq!(s.out_of_sync(t2, lag), vec![3]);
        s.update(&partition(vec![1, 2]), t2);
        assert!(
            s.ready_to_join(130).is_empty(),
            "its old progress does not count"
        );
        s.record_fetch(3, 130, 130, t2);
        assert_eq!(s.ready_to_join(130), vec![3]);
        s.epoch_start_offset = 140;
        assert!(
            s.ready_to_join(130).is_empty(),
            "must reach this epoch's start"
        );
    }

    #[test]
    fn the_low_watermark_is_the_smallest_log_start_over_live_replicas() {
        let now = Instant::now();
        let mut s = LeaderState::new(1, &partition(vec![1, 2, 3]), 0, now);
        assert_eq!(
            s.low_watermark(10, |_| true),
            10,
            "no follower log start known yet"
        );
        s.record_log_start(2, 4);
        s.record_log_start(3, 8);
        assert_eq!(s.low_watermark(10, |_| true), 4);
        assert_eq!(
            s.low_watermark(10, |id| id != 2),
            8,
            "a fenced follower does not count"
        );
        s.record_log_start(9, 0);
        assert_eq!(s.low_watermark(10, |_| true), 4, "not a replica");
    }
}
