//! Append-only storage of an index's panels in segments of a fixed number of panels.
//!
//! A growing `Vec` copies everything it holds into fresh memory each time it doubles: an index
//! grown to N bytes has touched about 2N bytes of new pages (every first touch a page fault
//! that zeroes the page), copied N more, and needed 1.5N at once while it moved. Measured on
//! the seed's workload (3 stateful replicas indexing 100,000 rows of 128-d): that growth was a
//! third of the CPU time of indexing. In segments, appending never moves what is stored: each
//! byte is touched once, and the peak is the index plus one segment.
//!
//! The first segment grows like a `Vec` (a small index stays small); every later one is
//! allocated whole, once, and filled in place. A scan reads the panels of one segment as one
//! slice ([`Segments::run`]); a range that crosses segments is cut at their ends
//! ([`Segments::runs`]).

use std::ops::Range;

/// About this many bytes per segment: long sequential reads for a scan, little memory reserved
/// ahead of the rows.
pub(super) const SEGMENT_BYTES: usize = 4 << 20;

/// How many panels of `panel_bytes` bytes make a segment of about [`SEGMENT_BYTES`].
pub(super) fn per_segment(panel_bytes: usize) -> usize {
    (SEGMENT_BYTES / panel_bytes.max(1)).max(1)
}

/// Panels of `unit` elements each, in segments of `per_segment` panels.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Segments<T> {
    unit: usize,
    per_segment: usize,
    segments: Vec<Vec<T>>,
    panels: usize,
}

impl<T: Copy> Segments<T> {
    /// Empty storage for panels of `unit` elements, `per_segment` (at least 1) to a segment.
    pub(super) fn new(unit: usize, per_segment: usize) -> Self {
        Segments {
            unit,
            per_segment: per_segment.max(1),
            segments: Vec::new(),
            panels: 0,
        }
    }

    /// Panels to a segment.
    pub(super) fn per_segment(&self) -> usize {
        self.per_segment
    }

    /// The number of panels stored.
    #[cfg(test)]
    pub(super) fn panels(&self) -> usize {
        self.panels
    }

    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.panels == 0
    }

    /// Appends a panel of `fill`s.
    pub(super) fn push(&mut self, fill: T) {
        let (unit, whole) = (self.unit, self.per_segment * self.unit);
        let segment = self.panels / self.per_segment;
        if segment == self.segments.len() {
            let capacity = if segment == 0 { 0 } else { whole };
            self.segments.push(Vec::with_capacity(capacity));
        }
        let s = &mut self.segments[segment];
        if s.capacity() < s.len() + unit {
            // Only the first segment gets here: it doubles, up to a whole segment.
            let want = (2 * s.capacity()).max(s.len() + unit).min(whole);
            s.reserve_exact(want - s.len());
        }
        s.resize(s.len() + unit, fill);
        self.panels += 1;
    }

    /// Panel `p`.
    pub(super) fn panel(&self, p: usize) -> &[T] {
        let (s, o) = (p / self.per_segment, p % self.per_segment);
        &self.segments[s][o * self.unit..(o + 1) * self.unit]
    }

    /// Panel `p`, to write into.
    pub(super) fn panel_mut(&mut self, p: usize) -> &mut [T] {
        let (s, o) = (p / self.per_segment, p % self.per_segment);
        &mut self.segments[s][o * self.unit..(o + 1) * self.unit]
    }

    /// The panels `range` as one slice. The range lies in one segment: it comes from
    /// [`Segments::runs`] or ends no later than [`Segments::segment_end`] of its start.
    pub(super) fn run(&self, range: Range<usize>) -> &[T] {
        if range.is_empty() {
            return &[];
        }
        let s = range.start / self.per_segment;
        assert!(
            range.end <= self.segment_end(range.start),
            "panels {range:?} cross the end of segment {s}"
        );
        let o = range.start % self.per_segment;
        &self.segments[s][o * self.unit..(o + range.len()) * self.unit]
    }

    /// Where the segment holding panel `p` ends (one past its last panel).
    pub(super) fn segment_end(&self, p: usize) -> usize {
        (p / self.per_segment + 1) * self.per_segment
    }

    /// `range` cut at the ends of segments: consecutive ranges, each within one segment.
    pub(super) fn runs(&self, range: Range<usize>) -> impl Iterator<Item = Range<usize>> + '_ {
        let mut start = range.start;
        std::iter::from_fn(move || {
            (start < range.end).then(|| {
                let end = range.end.min(self.segment_end(start));
                let r = start..end;
                start = end;
                r
            })
        })
    }

    /// Every panel's elements, in order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.segments.iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panels_are_where_they_were_put_across_segments() {
        let mut s = Segments::new(3, 2);
        for p in 0..7u32 {
            s.push(0u32);
            for (j, x) in s.panel_mut(p as usize).iter_mut().enumerate() {
                *x = 10 * p + j as u32;
            }
        }
        assert_eq!(s.panels(), 7);
        assert_eq!(s.segments.len(), 4);
        assert_eq!(s.panel(5), &[50, 51, 52]);
        assert_eq!(s.run(2..4), &[20, 21, 22, 30, 31, 32]);
        assert_eq!(s.run(6..7), &[60, 61, 62]);
        assert_eq!(s.run(3..3), &[] as &[u32]);
        assert_eq!(s.runs(1..6).collect::<Vec<_>>(), vec![1..2, 2..4, 4..6]);
        assert_eq!(s.runs(0..0).count(), 0);
        assert_eq!(s.iter().count(), 21);
    }

    #[test]
    fn a_later_segment_is_allocated_once_and_never_moves() {
        let mut s = Segments::new(4, 8);
        for _ in 0..9 {
            s.push(1.0f32);
        }
        let second = s.segments[1].as_ptr();
        assert_eq!(s.segments[1].capacity(), 32);
        for _ in 0..7 {
            s.push(1.0f32);
        }
        assert_eq!(s.segments[1].as_ptr(), second);
        // The first segment never grew past a whole segment.
        assert_eq!(s.segments[0].capacity(), 32);
    }

    #[test]
    #[should_panic(expected = "cross the end of segment")]
    fn a_run_across_segments_is_refused() {
        let mut s = Segments::new(1, 2);
        for _ in 0..4 {
            s.push(0u8);
        }
        let _ = s.run(1..3);
    }
}
