//! What the Schedule III record must tell a clinic before anything else:
//! a registration missing or running out, lots past or near expiry with
//! stock on hand, draws never closed by an administration or a waste, and
//! the clocks of a loss or theft (notify the DEA within one business day,
//! DEA Form 106 within 45 days). Pure: the caller reads the rows.

use jiff::civil::Date;

use super::{days_until, fmt_ml, loss_clock};

/// Lots expiring within this many days are flagged.
pub const EXPIRY_WARN_DAYS: i64 = 90;
/// Registrations expiring within this many days are flagged.
pub const REGISTRATION_WARN_DAYS: i64 = 60;

/// One registered location, as of its own today.
#[derive(Debug, Clone)]
pub struct Site {
    pub clinic_id: String,
    pub name: String,
    pub today: Date,
    /// The start of `today` in the location's zone (microseconds).
    pub midnight: i64,
    /// The DEA number and its expiry (YYYY-MM-DD), if one is on file.
    pub registration: Option<(String, String)>,
}

/// A lot and what is left of it.
#[derive(Debug, Clone)]
pub struct Lot {
    pub clinic_id: String,
    pub lot_number: String,
    pub product_name: String,
    /// YYYY-MM-DD.
    pub expires_on: String,
    pub balance_ul: i64,
}

/// A draw not yet closed by an administration or a waste.
#[derive(Debug, Clone)]
pub struct OpenDraw {
    pub clinic_id: String,
    pub drawn_at: i64,
    /// When it was drawn, as the location writes it.
    pub drawn_when: String,
    pub drawn_ul: i64,
    pub lot_number: String,
    pub drawn_by: String,
}

/// A loss, theft or count discrepancy case.
#[derive(Debug, Clone)]
pub struct Case {
    pub clinic_id: String,
    /// `loss`, `theft` or `discrepancy`.
    pub kind: String,
    pub status: String,
    /// YYYY-MM-DD.
    pub discovered_on: String,
    pub dea_notified_on: Option<String>,
    pub form106_filed_on: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub clinic_id: String,
    /// `stop` for what must be acted on now, `warn` for what comes soon.
    pub level: &'static str,
    pub text: String,
}

fn alert(site: &Site, level: &'static str, text: String) -> Alert {
    Alert {
        clinic_id: site.clinic_id.clone(),
        level,
        text: format!("{}: {text}", site.name),
    }
}

/// Every alert of every site, site by site.
pub fn alerts(sites: &[Site], lots: &[Lot], draws: &[OpenDraw], cases: &[Case]) -> Vec<Alert> {
    let mut out = Vec::new();
    for s in sites {
        let days = |d: &str| d.parse::<Date>().ok().map(|d| days_until(s.today, d));
        match &s.registration {
            None => out.push(alert(s, "stop", "no DEA registration on file".into())),
            Some((dea, expires)) => match days(expires) {
                Some(d) if d < 0 => out.push(alert(
                    s,
                    "stop",
                    format!("DEA registration {dea} expired on {expires}"),
                )),
                Some(d) if d <= REGISTRATION_WARN_DAYS => out.push(alert(
                    s,
                    "warn",
                    format!("DEA registration {dea} expires on {expires} ({d} days)"),
                )),
                _ => {}
            },
        }
        for b in lots
            .iter()
            .filter(|b| b.clinic_id == s.clinic_id && b.balance_ul > 0)
        {
            let on_hand = fmt_ml(b.balance_ul);
            match days(&b.expires_on) {
                Some(d) if d < 0 => out.push(alert(
                    s,
                    "stop",
                    format!(
                        "lot {} ({}) expired on {} with {on_hand} on hand: return or destroy it",
                        b.lot_number, b.product_name, b.expires_on
                    ),
                )),
                Some(d) if d <= EXPIRY_WARN_DAYS => out.push(alert(
                    s,
                    "warn",
                    format!(
                        "lot {} ({}) expires on {} ({d} days) with {on_hand} on hand",
                        b.lot_number, b.product_name, b.expires_on
                    ),
                )),
                _ => {}
            }
        }
        for d in draws
            .iter()
            .filter(|d| d.clinic_id == s.clinic_id && d.drawn_at < s.midnight)
        {
            out.push(alert(
                s,
                "stop",
                format!(
                    "a draw of {} from lot {} on {} by {} was never closed by an administration or a waste",
                    fmt_ml(d.drawn_ul),
                    d.lot_number,
                    d.drawn_when,
                    d.drawn_by
                ),
            ));
        }
        for k in cases
            .iter()
            .filter(|k| k.clinic_id == s.clinic_id && k.status == "open")
        {
            let Ok(found) = k.discovered_on.parse::<Date>() else {
                continue;
            };
            let clock = loss_clock(found);
            let kind = if k.kind == "discrepancy" {
                "count discrepancy"
            } else {
                k.kind.as_str()
            };
            if k.kind == "theft" || k.kind == "loss" {
                if k.dea_notified_on.is_none() {
                    out.push(alert(
                        s,
                        "stop",
                        format!(
                            "{kind} found on {found}: notify the DEA field office by {}",
                            clock.notify_by
                        ),
                    ));
                }
                if k.form106_filed_on.is_none() {
                    let level = if s.today > clock.form106_by {
                        "stop"
                    } else {
                        "warn"
                    };
                    out.push(alert(
                        s,
                        level,
                        format!(
                            "DEA Form 106 for the {kind} of {found} is due by {}",
                            clock.form106_by
                        ),
                    ));
                }
            } else {
                out.push(alert(
                    s,
                    "warn",
                    format!("an open {kind} from {found} needs resolving"),
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn site(today: Date, registration: Option<(&str, &str)>) -> Site {
        Site {
            clinic_id: "g".into(),
            name: "Glendale".into(),
            today,
            midnight: 1_000,
            registration: registration.map(|(a, b)| (a.into(), b.into())),
        }
    }

    fn lot(expires_on: &str, balance_ul: i64) -> Lot {
        Lot {
            clinic_id: "g".into(),
            lot_number: "K1".into(),
            product_name: "Ketamine 50 mg/mL".into(),
            expires_on: expires_on.into(),
            balance_ul,
        }
    }

    fn levels(a: &[Alert]) -> Vec<&'static str> {
        a.iter().map(|x| x.level).collect()
    }

    #[test]
    fn a_registration_is_stopped_when_missing_or_expired_and_warned_before() {
        let today = date(2026, 12, 7);
        let a = alerts(&[site(today, None)], &[], &[], &[]);
        assert_eq!(levels(&a), ["stop"]);
        assert!(a[0].text.contains("no DEA registration"), "{}", a[0].text);
        let a = alerts(
            &[site(today, Some(("FS1234563", "2026-12-06")))],
            &[],
            &[],
            &[],
        );
        assert_eq!(levels(&a), ["stop"], "expired yesterday");
        let a = alerts(
            &[site(today, Some(("FS1234563", "2027-02-05")))],
            &[],
            &[],
            &[],
        );
        assert_eq!(levels(&a), ["warn"], "60 days out");
        let a = alerts(
            &[site(today, Some(("FS1234563", "2027-02-06")))],
            &[],
            &[],
            &[],
        );
        assert!(a.is_empty(), "61 days out: {a:?}");
    }

    #[test]
    fn only_lots_with_stock_are_flagged_and_an_expired_one_stops() {
        let today = date(2026, 12, 7);
        let s = [site(today, Some(("FS1234563", "2028-01-01")))];
        let a = alerts(
            &s,
            &[
                lot("2026-12-06", 500),
                lot("2027-03-07", 500),
                lot("2027-03-08", 500),
                lot("2026-01-01", 0),
            ],
            &[],
            &[],
        );
        assert_eq!(levels(&a), ["stop", "warn"], "{a:?}");
        assert!(a[0].text.contains("return or destroy"), "{}", a[0].text);
        assert!(a[1].text.contains("(90 days)"), "{}", a[1].text);
        let other = Lot {
            clinic_id: "d".into(),
            ..lot("2026-01-01", 500)
        };
        assert!(
            alerts(&s, &[other], &[], &[]).is_empty(),
            "another site's lot"
        );
    }

    #[test]
    fn a_draw_left_open_past_midnight_stops() {
        let s = [site(date(2026, 12, 7), Some(("FS1234563", "2028-01-01")))];
        let draw = |at| OpenDraw {
            clinic_id: "g".into(),
            drawn_at: at,
            drawn_when: "Dec 6 16:40".into(),
            drawn_ul: 1_000,
            lot_number: "K1".into(),
            drawn_by: "nina.nurse".into(),
        };
        assert!(alerts(&s, &[], &[draw(1_000)], &[]).is_empty(), "today's");
        let a = alerts(&s, &[], &[draw(999)], &[]);
        assert_eq!(levels(&a), ["stop"]);
        assert!(a[0].text.contains("never closed"), "{}", a[0].text);
    }

    #[test]
    fn a_theft_runs_two_clocks_and_a_discrepancy_asks_to_be_resolved() {
        let case = |kind: &str, notified: bool, filed: bool| Case {
            clinic_id: "g".into(),
            kind: kind.into(),
            status: "open".into(),
            discovered_on: "2026-10-01".into(),
            dea_notified_on: notified.then(|| "2026-10-02".into()),
            form106_filed_on: filed.then(|| "2026-10-20".into()),
        };
        let early = [site(date(2026, 10, 1), Some(("FS1234563", "2028-01-01")))];
        let a = alerts(&early, &[], &[], &[case("theft", false, false)]);
        assert_eq!(levels(&a), ["stop", "warn"], "{a:?}");
        let late = [site(date(2026, 12, 7), Some(("FS1234563", "2028-01-01")))];
        let a = alerts(&late, &[], &[], &[case("loss", true, false)]);
        assert_eq!(levels(&a), ["stop"], "Form 106 overdue: {a:?}");
        assert!(alerts(&late, &[], &[], &[case("loss", true, true)]).is_empty());
        let a = alerts(&late, &[], &[], &[case("discrepancy", false, false)]);
        assert_eq!(levels(&a), ["warn"]);
        assert!(a[0].text.contains("count discrepancy"), "{}", a[0].text);
        let closed = Case {
            status: "closed".into(),
            ..case("theft", false, false)
        };
        assert!(alerts(&late, &[], &[], &[closed]).is_empty());
    }
}
