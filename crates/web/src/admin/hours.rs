//! The opening-hours chart on a clinic's settings page: a bar per weekday
//! on a 6:00–20:00 axis, with a line at the clinic's local "now".

use clinic::records::org::Clinic;
use domain::clinics::WEEKDAY_NAMES;

const AXIS_START: i32 = 6 * 60;
const AXIS_END: i32 = 20 * 60;

fn axis_x(min: i32) -> i32 {
    40 + (min.clamp(AXIS_START, AXIS_END) - AXIS_START) * 370 / (AXIS_END - AXIS_START)
}

pub struct HoursRow {
    pub day: &'static str,
    pub y: i32,
    pub bar: Option<(i32, i32)>,
    pub label: String,
}

pub struct HoursChart {
    pub id: String,
    pub summary: String,
    pub local_time: String,
    pub zone: String,
    pub open_now: bool,
    pub rows: Vec<HoursRow>,
    pub now_x: Option<i32>,
    pub ticks: Vec<(i32, String)>,
}

impl HoursChart {
    pub fn of(k: &Clinic, closures: &[jiff::civil::Date], now: i64) -> HoursChart {
        let s = &k.settings;
        let clock = s.clock();
        let local = clock.zoned(now);
        let minute = i32::from(local.hour()) * 60 + i32::from(local.minute());
        let rows = (1..=7)
            .map(|d| {
                let h = s.hours.iter().find(|h| h.weekday == d);
                HoursRow {
                    day: WEEKDAY_NAMES[(d - 1) as usize],
                    y: 8 + (i32::from(d) - 1) * 20,
                    bar: h.map(|h| {
                        (
                            axis_x(h.opens_min),
                            axis_x(h.closes_min) - axis_x(h.opens_min),
                        )
                    }),
                    label: h
                        .map(|h| {
                            format!(
                                "{} {}–{}",
                                h.day_name(),
                                clock.time_of_day(h.opens_min),
                                clock.time_of_day(h.closes_min)
                            )
                        })
                        .unwrap_or_default(),
                }
            })
            .collect();
        HoursChart {
            id: k.id.to_string(),
            summary: s.hours_summary(),
            local_time: clock.day_time(now),
            zone: s.time_zone.clone(),
            open_now: domain::clinics::is_open_at(
                domain::time::to_timestamp(now),
                clock.zone(),
                &s.hours,
                closures,
            ),
            rows,
            now_x: (AXIS_START..=AXIS_END)
                .contains(&minute)
                .then(|| axis_x(minute)),
            ticks: (6..=20)
                .step_by(2)
                .map(|h| (axis_x(h * 60), h.to_string()))
                .collect(),
        }
    }
}
