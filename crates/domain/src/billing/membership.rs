//! Maintenance memberships: a monthly fee that buys a set number of sessions
//! for that month. Each month is a period that starts on the same day of the
//! month as the membership (clamped to the month's last day: a membership
//! begun on January 31 renews on February 28 or 29, then on March 31), so the
//! renewal dates never drift. Unused sessions end with their period.

use jiff::civil::Date;
use jiff::Span;

/// Periods one renewal run bills at most for one membership (a server that
/// was off for a while catches up, but never bills years at once).
pub const MAX_CATCH_UP: i64 = 3;

/// The `k`-th period (from 0) of a membership begun on `start`: its first and
/// last day.
pub fn period(start: Date, k: i64) -> Option<(Date, Date)> {
    let from = start.checked_add(Span::new().months(k)).ok()?;
    let next = start.checked_add(Span::new().months(k + 1)).ok()?;
    Some((from, next.yesterday().ok()?))
}

/// The periods due on `today` of a membership begun on `start` that has
/// billed `billed` periods: those that have begun, at most [`MAX_CATCH_UP`].
pub fn due(start: Date, billed: i64, today: Date) -> Vec<i64> {
    (billed..)
        .take_while(|k| period(start, *k).is_some_and(|(from, _)| from <= today))
        .take(MAX_CATCH_UP as usize)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn periods_keep_the_day_of_the_month_without_drifting() {
        let s = date(2027, 1, 31);
        assert_eq!(period(s, 0), Some((date(2027, 1, 31), date(2027, 2, 27))));
        assert_eq!(period(s, 1), Some((date(2027, 2, 28), date(2027, 3, 30))));
        assert_eq!(period(s, 2), Some((date(2027, 3, 31), date(2027, 4, 29))));
        // A leap year.
        assert_eq!(period(date(2028, 1, 31), 1).unwrap().0, date(2028, 2, 29));
        // Periods tile: each starts the day after the last one ended.
        let s = date(2026, 11, 28);
        for k in 0..30 {
            let (_, end) = period(s, k).unwrap();
            let (next, _) = period(s, k + 1).unwrap();
            assert_eq!(end.tomorrow().unwrap(), next, "period {k}");
        }
    }

    #[test]
    fn due_periods_are_the_begun_ones_not_yet_billed() {
        let s = date(2026, 9, 15);
        // Only the first is billed at the start.
        assert_eq!(due(s, 1, date(2026, 10, 14)), Vec::<i64>::new());
        assert_eq!(due(s, 1, date(2026, 10, 15)), vec![1]);
        assert_eq!(due(s, 2, date(2026, 10, 15)), Vec::<i64>::new());
        // Two months behind: both, in order.
        assert_eq!(due(s, 1, date(2026, 11, 20)), vec![1, 2]);
        // Never more than the catch-up limit at once.
        assert_eq!(due(s, 1, date(2027, 9, 1)).len(), MAX_CATCH_UP as usize);
        // Nothing before the start.
        assert_eq!(due(s, 0, date(2026, 9, 14)), Vec::<i64>::new());
    }
}
