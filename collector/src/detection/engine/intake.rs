//! Where the engine's events come from: the commits the writer hands over on the tap while
//! they follow the cursor without a gap, otherwise the store.

use super::Engine;
use crate::detection::Result;
use crate::detection::windows::{Event, ModelKey, Selection, from_row, read_events};

impl Engine {
    /// The events after the cursor in `event_id` order, and whether more are known to wait.
    /// The tap's commits are used while they follow the cursor without a gap; the store is
    /// read at start (events stored before, or while detection was off), after the tap left
    /// events out, and always when there is no tap.
    pub(super) fn next_events(&mut self, limit: usize) -> Result<(Vec<(ModelKey, Event)>, bool)> {
        let (taken, newest) = match &self.tap {
            Some(t) => t.take(),
            None => (Vec::new(), None),
        };
        let after = |c: Option<u64>| c.map_or(0, |c| c + 1);
        let mut cursor = self.cursor;
        let relevant: Vec<_> = taken
            .into_iter()
            .filter(|c| c.last_event_id().is_some_and(|l| l >= after(cursor)))
            .collect();
        let gap_first = relevant
            .first()
            .is_some_and(|c| c.first_event_id > after(cursor));
        let missed = relevant.is_empty() && newest.is_some_and(|n| n >= after(cursor));
        let mut events = Vec::new();
        if self.tap.is_none() || !self.caught_up || gap_first || missed {
            events = read_events(&self.conn, Selection::After { cursor, limit })?;
            if let (Some((_, first)), Some((_, last))) = (events.first(), events.last()) {
                let (first, last) = (first.event_id, last.event_id);
                self.publish_stored_model_info(first, last)?;
                cursor = Some(last);
            }
            let full = events.len() == limit;
            self.caught_up = !full;
            if full || self.tap.is_none() {
                return Ok((events, full));
            }
        }
        for c in relevant {
            let (first, Some(last)) = (c.first_event_id, c.last_event_id()) else {
                continue;
            };
            if last < after(cursor) {
                continue; // read from the store just now
            }
            if first > after(cursor) {
                break; // a gap: the rest comes from the store on the next pass
            }
            let skip = after(cursor) - first;
            for (i, row) in c.rows.into_iter().enumerate().skip(skip as usize) {
                self.note_model_info(&row.model, &row.version, row.resource_id)?;
                events.push(from_row(&mut self.names, first + i as u64, row));
            }
            cursor = Some(last);
        }
        // Events committed but not handed over: read from the store on the next pass.
        let behind = newest.is_some_and(|n| n >= after(cursor));
        if behind {
            self.caught_up = false;
        }
        Ok((events, behind))
    }
}
