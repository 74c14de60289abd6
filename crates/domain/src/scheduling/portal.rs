//! What a patient may book and cancel in the portal by themselves. Everything
//! else goes through the front desk: the rules keep a patient from filling the
//! calendar, from booking treatment without the clinic, and from cancelling so
//! late that a fee would apply without anyone having spoken to them.

use super::AppointmentType;

/// Visits a patient may hold at once that they booked themselves.
pub const MAX_SELF_BOOKED: usize = 2;

/// Minutes a portal sign-in link stays usable.
pub const LINK_MINUTES: i64 = 30;
/// Minutes a portal session lives without use, and at most.
pub const SESSION_IDLE_MINUTES: i64 = 30;
pub const SESSION_MAX_HOURS: i64 = 4;

/// A visit of the patient as the portal rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnVisit {
    pub type_code: String,
    pub starts_at: i64,
    /// Still booked (not cancelled, not attended, not missed).
    pub booked: bool,
    pub completed: bool,
    pub self_booked: bool,
    /// Part of a treatment series (its spacing rules tie it to the doses).
    pub in_series: bool,
}

/// Why the patient may not book a visit of this type themselves, or `None`.
///
/// - Only types the clinic marks as portal-bookable.
/// - Visits that give a dose are never self-booked (they belong to a plan and
///   a series that the clinic books).
/// - Follow-ups and integration sessions are for established patients: at
///   least one attended visit. Someone not yet seen may book only the free
///   consultation.
/// - At most [`MAX_SELF_BOOKED`] self-booked visits ahead at a time, and one
///   visit of a type per day.
pub fn booking_refusal(
    ty: &AppointmentType,
    visits: &[OwnVisit],
    start: Option<i64>,
    now: i64,
    day_of: impl Fn(i64) -> i64,
) -> Option<String> {
    if !ty.portal || ty.dose {
        return Some(format!(
            "{} visits are booked by the clinic; please call us",
            ty.name
        ));
    }
    let established = visits.iter().any(|v| v.completed);
    if !ty.public && !established {
        return Some(format!(
            "{} visits can be booked online after your first visit; please call us",
            ty.name
        ));
    }
    if ty.public && established {
        return Some(format!(
            "the {} is for people new to the clinic",
            ty.name.to_lowercase()
        ));
    }
    let ahead: Vec<&OwnVisit> = visits
        .iter()
        .filter(|v| v.booked && v.starts_at > now)
        .collect();
    if ahead.iter().filter(|v| v.self_booked).count() >= MAX_SELF_BOOKED {
        return Some(format!(
            "you already have {MAX_SELF_BOOKED} visits booked online; \
             cancel one or call us to book more"
        ));
    }
    if let Some(s) = start {
        let day = day_of(s);
        if ahead
            .iter()
            .any(|v| v.type_code == ty.code && day_of(v.starts_at) == day)
        {
            return Some(format!(
                "you already have a {} on that day",
                ty.name.to_lowercase()
            ));
        }
    }
    None
}

/// Why the patient may not cancel this visit themselves, or `None`: only
/// visits of a type they could book online, not part of a treatment series
/// (an integration session is tied to its dose), still booked, and not inside
/// the clinic's late-cancellation window (a late cancellation may carry a
/// fee, so it goes through a person).
pub fn cancel_refusal(
    ty: Option<&AppointmentType>,
    visit: &OwnVisit,
    now: i64,
    late_cancel_hours: u16,
) -> Option<String> {
    if !visit.booked || visit.starts_at <= now {
        return Some("this visit can no longer be cancelled".into());
    }
    match ty {
        Some(t) if t.portal && !t.dose => {}
        _ => return Some("please call us to change a treatment visit".into()),
    }
    if visit.in_series {
        return Some("it is part of your treatment series; please call us".into());
    }
    if visit.starts_at - now < i64::from(late_cancel_hours) * 3_600_000_000 {
        return Some(format!(
            "it starts within {late_cancel_hours} hours; please call us"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000_000;
    const NOW: i64 = 1_000 * 24 * H;

    fn ty(code: &str) -> AppointmentType {
        AppointmentType::defaults()
            .into_iter()
            .find(|t| t.code == code)
            .expect("a default type")
    }

    fn visit(code: &str, at: i64, booked: bool, completed: bool, own: bool) -> OwnVisit {
        OwnVisit {
            type_code: code.into(),
            starts_at: at,
            booked,
            completed,
            self_booked: own,
            in_series: false,
        }
    }

    fn day(m: i64) -> i64 {
        m.div_euclid(24 * H)
    }

    #[test]
    fn treatment_visits_are_never_self_booked() {
        let seen = [visit("intake", NOW - 48 * H, false, true, false)];
        for code in ["iv_infusion", "im_injection", "intranasal", "intake"] {
            let r = booking_refusal(&ty(code), &seen, None, NOW, day);
            assert!(r.is_some_and(|m| m.contains("call us")), "{code}");
        }
    }

    #[test]
    fn follow_ups_need_a_first_visit_and_consultations_are_for_new_people() {
        let fu = ty("follow_up");
        let consult = ty("consultation");
        assert!(booking_refusal(&fu, &[], None, NOW, day)
            .is_some_and(|m| m.contains("after your first visit")));
        assert_eq!(booking_refusal(&consult, &[], None, NOW, day), None);
        // A booked (not yet attended) visit does not make someone established.
        let booked = [visit("consultation", NOW + 24 * H, true, false, false)];
        assert!(booking_refusal(&fu, &booked, None, NOW, day).is_some());
        let seen = [visit("intake", NOW - 48 * H, false, true, false)];
        assert_eq!(booking_refusal(&fu, &seen, None, NOW, day), None);
        assert!(booking_refusal(&consult, &seen, None, NOW, day)
            .is_some_and(|m| m.contains("new to the clinic")));
    }

    #[test]
    fn at_most_two_self_booked_visits_ahead() {
        let fu = ty("follow_up");
        let mut v = vec![
            visit("intake", NOW - 48 * H, false, true, false),
            visit("follow_up", NOW + 72 * H, true, false, true),
            // Booked by the clinic: does not count.
            visit("integration", NOW + 96 * H, true, false, false),
            // Cancelled and past ones do not count either.
            visit("follow_up", NOW + 120 * H, false, false, true),
            visit("follow_up", NOW - 24 * H, true, false, true),
        ];
        assert_eq!(booking_refusal(&fu, &v, None, NOW, day), None);
        v.push(visit("integration", NOW + 200 * H, true, false, true));
        assert!(
            booking_refusal(&fu, &v, None, NOW, day).is_some_and(|m| m.contains("already have 2"))
        );
    }

    #[test]
    fn one_visit_of_a_type_per_day() {
        let fu = ty("follow_up");
        let v = [
            visit("intake", NOW - 48 * H, false, true, false),
            visit("follow_up", NOW + 72 * H, true, false, false),
        ];
        let same_day = NOW + 74 * H;
        assert!(booking_refusal(&fu, &v, Some(same_day), NOW, day)
            .is_some_and(|m| m.contains("on that day")));
        assert_eq!(
            booking_refusal(&fu, &v, Some(NOW + 100 * H), NOW, day),
            None
        );
        // Another type on the same day is fine.
        assert_eq!(
            booking_refusal(&ty("integration"), &v, Some(same_day), NOW, day),
            None
        );
    }

    #[test]
    fn cancelling_online_stops_at_the_late_window_and_at_treatment() {
        let fu = ty("follow_up");
        let ahead = visit("follow_up", NOW + 48 * H, true, false, true);
        assert_eq!(cancel_refusal(Some(&fu), &ahead, NOW, 24), None);
        let soon = visit("follow_up", NOW + 23 * H, true, false, true);
        assert!(cancel_refusal(Some(&fu), &soon, NOW, 24)
            .is_some_and(|m| m.contains("within 24 hours")));
        let iv = visit("iv_infusion", NOW + 96 * H, true, false, false);
        assert!(cancel_refusal(Some(&ty("iv_infusion")), &iv, NOW, 24)
            .is_some_and(|m| m.contains("treatment visit")));
        // A type the clinic has since removed: a person decides.
        assert!(cancel_refusal(None, &ahead, NOW, 24).is_some());
        let gone = visit("follow_up", NOW + 48 * H, false, false, true);
        assert!(cancel_refusal(Some(&fu), &gone, NOW, 24).is_some());
        let past = visit("follow_up", NOW - H, true, false, true);
        assert!(cancel_refusal(Some(&fu), &past, NOW, 24).is_some());
        // An integration session of a series goes with its dose.
        let mut tied = visit("integration", NOW + 96 * H, true, false, false);
        tied.in_series = true;
        assert!(cancel_refusal(Some(&ty("integration")), &tied, NOW, 24)
            .is_some_and(|m| m.contains("treatment series")));
        tied.in_series = false;
        assert_eq!(
            cancel_refusal(Some(&ty("integration")), &tied, NOW, 24),
            None
        );
    }
}
