//! batchWindow / debounce: when a subscription's matched events are handed to its plugin.
//!
//! Pure: every call takes `now`. One schedule per subscription holds the ids waiting in it.
//! The deadline is the earlier of `firstAt + batchWindow` and `lastJoin + debounce`, so debounce
//! restarts on each new event but never beyond the window. Reaching 1024 events or 4 MiB fires
//! at once. In memory only: a restart drops open windows, and the next pass finds the events
//! again because their runs have not succeeded.

use std::collections::BTreeSet;

use routerd_model::{Event, GoDuration, Timestamp};

pub const MAX_BATCH_EVENTS: usize = 1024;
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
const DEFAULT_WINDOW_WITH_DEBOUNCE: GoDuration = GoDuration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub batch_window: GoDuration,
    pub debounce: GoDuration,
}

impl Window {
    /// Lenient like Go: unparsable values mean "off". `None` when both are off.
    pub fn parse(batch_window: &str, debounce: &str) -> Option<Window> {
        let lenient = |s: &str| GoDuration::parse(s.trim()).unwrap_or(GoDuration::ZERO);
        let (mut window, debounce) = (lenient(batch_window), lenient(debounce));
        if !window.is_positive() && !debounce.is_positive() {
            return None;
        }
        if !window.is_positive() {
            window = DEFAULT_WINDOW_WITH_DEBOUNCE;
        }
        Some(Window {
            batch_window: window,
            debounce,
        })
    }
}

/// The budget one event takes in a batch (Go's measure).
pub fn event_cost(e: &Event) -> usize {
    serde_json::to_string(&e.payload)
        .map(|s| s.len())
        .unwrap_or(0)
        + e.id.len()
        + e.event_type.len()
        + e.subject.len()
}

#[derive(Debug, Clone, Default)]
pub struct Schedule {
    first_at: Option<Timestamp>,
    last_join: Timestamp,
    ids: BTreeSet<String>,
    bytes: usize,
}

impl Schedule {
    /// Adds newly eligible events (up to the limits). Returns whether any joined.
    pub fn add(&mut self, events: &[Event], now: Timestamp) -> bool {
        let mut joined = false;
        for e in events {
            if self.ids.contains(&e.id) {
                continue;
            }
            let cost = event_cost(e);
            if self.is_full() || (!self.ids.is_empty() && self.bytes + cost > MAX_BATCH_BYTES) {
                break;
            }
            self.ids.insert(e.id.clone());
            self.bytes += cost;
            joined = true;
        }
        if joined {
            self.first_at.get_or_insert(now);
            self.last_join = now;
        }
        joined
    }

    fn is_full(&self) -> bool {
        self.ids.len() >= MAX_BATCH_EVENTS || self.bytes >= MAX_BATCH_BYTES
    }

    /// When the batch is due; `None` for an empty schedule.
    pub fn deadline(&self, w: Window) -> Option<Timestamp> {
        let first = self.first_at?;
        if self.is_full() {
            return Some(first);
        }
        let by_window = first.add(w.batch_window);
        Some(if w.debounce.is_positive() {
            by_window.min(self.last_join.add(w.debounce))
        } else {
            by_window
        })
    }

    pub fn is_due(&self, w: Window, now: Timestamp) -> bool {
        self.deadline(w).is_some_and(|d| now >= d)
    }

    pub fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: &str) -> Event {
        Event {
            id: id.into(),
            event_type: "t".into(),
            ..Default::default()
        }
    }
    fn at(s: i64) -> Timestamp {
        Timestamp::from_unix(1_780_142_400 + s)
    }

    #[test]
    fn window_parsing_is_lenient_and_defaults_the_window_for_debounce() {
        assert_eq!(Window::parse("", ""), None);
        assert_eq!(Window::parse("junk", "0s"), None);
        let w = Window::parse("", "5s").unwrap();
        assert_eq!(w.batch_window, GoDuration::from_secs(60));
    }

    #[test]
    fn debounce_restarts_on_new_events_but_never_beyond_the_window() {
        let w = Window {
            batch_window: GoDuration::from_secs(30),
            debounce: GoDuration::from_secs(10),
        };
        let mut s = Schedule::default();
        assert!(s.add(&[ev("a")], at(0)));
        assert_eq!(s.deadline(w), Some(at(10)));
        assert!(
            !s.add(&[ev("a")], at(5)),
            "a known event does not restart debounce"
        );
        assert!(s.add(&[ev("b")], at(8)));
        assert_eq!(s.deadline(w), Some(at(18)));
        s.add(&[ev("c")], at(25));
        assert_eq!(s.deadline(w), Some(at(30)), "capped by the window");
        assert!(!s.is_due(w, at(29)));
        assert!(s.is_due(w, at(30)));
    }

    #[test]
    fn a_full_batch_is_due_at_once() {
        let w = Window {
            batch_window: GoDuration::from_secs(3600),
            debounce: GoDuration::ZERO,
        };
        let mut s = Schedule::default();
        let many: Vec<Event> = (0..MAX_BATCH_EVENTS + 5)
            .map(|i| ev(&format!("e{i}")))
            .collect();
        s.add(&many, at(0));
        assert_eq!(s.len(), MAX_BATCH_EVENTS);
        assert!(s.is_due(w, at(0)));
    }
}
