//! Dose maths, done by code and never by hand, in decimal (0.75 x 42 kg is
//! 31.5 mg, not 31.499999999999996): mg/kg times today's weight to mg,
//! rounded as the protocol says; for sprays and troches, a whole number of
//! them. A dose outside the protocol's range is refused, and so is a weight
//! no adult has. The range and the route's safe maximum hold for the mg
//! actually ordered: where rounding would cross the top of the range, the
//! dose is rounded down instead (and up where it would fall below it).
//!
//! The volume is not known when the dose is ordered: it depends on the
//! strength of the vial actually drawn. [`prepare`] works it out from the
//! drawn lot's strength (mg to mL; for an infusion, the bag's total volume
//! to a pump rate in mL/h over the protocol's time).

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::protocols::{is_multiple, DoseUnit, Protocol, Route};
use crate::FieldError;

/// Lightest and heaviest weight the maths accepts (kg).
pub const WEIGHT_KG: (f64, f64) = (30.0, 300.0);

/// mL are given to the hundredth, pump rates to the tenth of a mL/h.
pub const ML_STEP: f64 = 0.01;
pub const RATE_STEP: f64 = 0.1;

/// A number as the person typed it (its shortest decimal form), not as the
/// binary float that carried it.
pub fn dec(v: f64) -> Decimal {
    // `{}` prints the shortest form that reads back as the same float.
    format!("{v}").parse().unwrap_or_default()
}

fn float(d: Decimal) -> f64 {
    d.to_f64().unwrap_or_default()
}

/// `v` to the nearest multiple of `step`, halves up: the same way every time.
pub fn round_half_up(v: Decimal, step: Decimal) -> Decimal {
    if step.is_zero() {
        return v;
    }
    (v / step).round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero) * step
}

fn round_down(v: Decimal, step: Decimal) -> Decimal {
    (v / step).floor() * step
}

fn round_up(v: Decimal, step: Decimal) -> Decimal {
    (v / step).ceil() * step
}

/// The volume of a dose at the strength of the lot drawn for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Volume {
    /// The lot drawn from, and its strength.
    pub lot: String,
    pub concentration_mg_per_ml: f64,
    /// Drug drawn from the vial, mL.
    pub drug_ml: f64,
    /// Diluent the drug goes into, mL (0 when undiluted).
    pub diluent_ml: f64,
    /// Everything that goes in: drug plus diluent, mL.
    pub total_ml: f64,
    /// Pump rate for an infusion, mL/h.
    pub rate_ml_h: Option<f64>,
}

/// What the prescriber orders and the nurse draws up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoseMaths {
    pub route: Route,
    /// The dose as ordered, in the protocol's unit.
    pub dose: f64,
    pub unit: DoseUnit,
    /// Today's weight, for doses per kg: the weight the order was computed
    /// from (a later weight voids the order).
    pub weight_kg: Option<f64>,
    /// The dose in mg after rounding.
    pub mg: f64,
    /// mg per kg actually ordered after rounding, for doses per kg.
    pub mg_per_kg: Option<f64>,
    /// The most mg this patient may have under the protocol (the top of the
    /// range or the safe maximum, whichever is lower, at this weight).
    pub max_mg: f64,
    /// Minutes the dose is given over (0 for a bolus).
    pub minutes: u32,
    /// Sprays or troches, for doses counted in them.
    pub units: Option<u32>,
    pub unit_mg: Option<f64>,
    /// A second person must check before the dose starts.
    pub second_check: bool,
    /// The diluent an infusion goes into (mL), from the protocol.
    #[serde(default)]
    pub diluent_ml: f64,
    /// The volume, once the drug is drawn ([`prepare`]).
    #[serde(default)]
    pub volume: Option<Volume>,
}

impl DoseMaths {
    /// Given over time by a pump (an infusion), rather than at once.
    pub fn is_infusion(&self) -> bool {
        self.route == Route::Iv && self.minutes > 0
    }

    /// Measured in mL from a vial (not counted in sprays or troches).
    pub fn is_liquid(&self) -> bool {
        self.units.is_none()
    }

    /// One line for the chair view and the note.
    pub fn summary(&self) -> String {
        let mut s = match (self.unit, self.weight_kg) {
            (DoseUnit::MgPerKg, Some(w)) => {
                format!("{} mg/kg x {} kg = {} mg", self.dose, w, self.mg)
            }
            _ => format!("{} mg", self.mg),
        };
        match (&self.volume, self.units) {
            (_, Some(n)) => s.push_str(&format!(
                "; {n} x {} mg {}",
                self.unit_mg.unwrap_or_default(),
                if self.route == Route::Intranasal {
                    "sprays"
                } else {
                    "troches"
                }
            )),
            (Some(v), None) => match v.rate_ml_h {
                Some(rate) => s.push_str(&format!(
                    "; {} mL of {} mg/mL (lot {}) + {} mL diluent = {} mL at {} mL/h over {} min",
                    v.drug_ml,
                    v.concentration_mg_per_ml,
                    v.lot,
                    v.diluent_ml,
                    v.total_ml,
                    rate,
                    self.minutes
                )),
                None => s.push_str(&format!(
                    "; {} mL of {} mg/mL (lot {})",
                    v.drug_ml, v.concentration_mg_per_ml, v.lot
                )),
            },
            (None, None) => s.push_str("; volume when drawn (it depends on the vial's strength)"),
        }
        s
    }
}

/// Works out a dose of `dose` (in the protocol's unit) for a patient
/// weighing `weight_kg` today. Every problem names its field.
pub fn order(
    p: &Protocol,
    dose: f64,
    weight_kg: Option<f64>,
) -> Result<DoseMaths, Vec<FieldError>> {
    let mut e = Vec::new();
    let d = &p.dose;
    if !dose.is_finite() || dose <= 0.0 {
        e.push(FieldError::new("dose", "must be a number above 0"));
    } else if dec(dose) < dec(d.min) || dec(dose) > dec(d.max) {
        e.push(FieldError::new(
            "dose",
            format!(
                "{dose} {} is outside the protocol's range {}-{} {} ({} v{})",
                d.unit.label(),
                d.min,
                d.max,
                d.unit.label(),
                p.id,
                p.version
            ),
        ));
    }
    let weight = match (d.unit, weight_kg) {
        (DoseUnit::MgPerKg, None) => {
            e.push(FieldError::new(
                "weight_kg",
                "the dose is per kg: weigh the patient today first",
            ));
            None
        }
        (_, Some(w)) if !w.is_finite() || w < WEIGHT_KG.0 || w > WEIGHT_KG.1 => {
            e.push(FieldError::new(
                "weight_kg",
                format!("{w} kg is outside {}-{} kg", WEIGHT_KG.0, WEIGHT_KG.1),
            ));
            None
        }
        (_, w) => w,
    };
    let prep = &p.preparation;
    let counted = matches!(p.route, Route::Intranasal | Route::Sublingual);
    if counted && dose.is_finite() && dose > 0.0 && !is_multiple(dose, prep.unit_mg) {
        e.push(FieldError::new(
            "dose",
            format!(
                "{dose} mg is not a whole number of {} mg units",
                prep.unit_mg
            ),
        ));
    }
    if !e.is_empty() {
        return Err(e);
    }
    let per_kg = |v: f64| match d.unit {
        DoseUnit::MgPerKg => dec(v) * dec(weight.unwrap_or_default()),
        DoseUnit::Mg => dec(v),
    };
    let (safe_unit, safe) = p.route.safe_max();
    let safe_mg = match safe_unit {
        DoseUnit::MgPerKg => dec(safe) * dec(weight.unwrap_or_default()),
        DoseUnit::Mg => dec(safe),
    };
    let (min_mg, max_mg) = (per_kg(d.min), per_kg(d.max).min(safe_mg));
    let raw = per_kg(dose);
    let step = dec(prep.round_mg);
    let mut mg = round_half_up(raw, step);
    if mg > max_mg {
        mg = round_down(raw, step);
    }
    if mg < min_mg {
        mg = round_up(raw, step);
    }
    if mg <= Decimal::ZERO {
        return Err(vec![FieldError::new(
            "dose",
            format!("rounds to 0 mg at {} mg steps", prep.round_mg),
        )]);
    }
    if mg > max_mg || mg < min_mg {
        return Err(vec![FieldError::new(
            "dose",
            format!(
                "no multiple of {} mg lies within {}-{} mg at this weight",
                prep.round_mg,
                min_mg.normalize(),
                max_mg.normalize()
            ),
        )]);
    }
    let units = counted.then(|| float(mg / dec(prep.unit_mg)).round() as u32);
    Ok(DoseMaths {
        route: p.route,
        dose,
        unit: d.unit,
        weight_kg: weight,
        mg: float(mg.normalize()),
        mg_per_kg: match (d.unit, weight) {
            (DoseUnit::MgPerKg, Some(w)) => {
                Some(float(round_half_up(mg / dec(w), Decimal::new(1, 3))))
            }
            _ => None,
        },
        max_mg: float(max_mg.normalize()),
        minutes: p.administration_minutes,
        units,
        unit_mg: counted.then_some(prep.unit_mg),
        second_check: prep.second_check,
        diluent_ml: if p.route == Route::Iv {
            prep.diluent_ml
        } else {
            0.0
        },
        volume: None,
    })
}

/// The ordered dose at the strength of the lot drawn for it: the drug's mL
/// (to the hundredth, never holding more than the patient's maximum), the
/// bag's total and, for an infusion, the pump rate.
pub fn prepare(m: &DoseMaths, lot: &str, mg_per_ml: f64) -> Result<DoseMaths, FieldError> {
    if !(mg_per_ml.is_finite() && mg_per_ml > 0.0) {
        return Err(FieldError::new(
            "vial_lot",
            "the lot's strength is not on file",
        ));
    }
    if !m.is_liquid() {
        return Err(FieldError::new(
            "vial_lot",
            "sprays and troches are counted, not drawn in mL",
        ));
    }
    let conc = dec(mg_per_ml);
    let mg = dec(m.mg);
    let ml_step = dec(ML_STEP);
    let mut drug = round_half_up(mg / conc, ml_step);
    if drug * conc > dec(m.max_mg) {
        drug = round_down(mg / conc, ml_step);
    }
    if drug <= Decimal::ZERO {
        return Err(FieldError::new(
            "vial_lot",
            format!(
                "{} mg is under 0.01 mL of {mg_per_ml} mg/mL: draw from a weaker lot",
                m.mg
            ),
        ));
    }
    let diluent = dec(m.diluent_ml);
    let total = drug + diluent;
    let rate = m.is_infusion().then(|| {
        float(round_half_up(
            total * Decimal::from(60) / Decimal::from(m.minutes),
            dec(RATE_STEP),
        ))
    });
    let mut out = m.clone();
    out.volume = Some(Volume {
        lot: lot.to_string(),
        concentration_mg_per_ml: mg_per_ml,
        drug_ml: float(drug.normalize()),
        diluent_ml: m.diluent_ml,
        total_ml: float(total.normalize()),
        rate_ml_h: rate,
    });
    Ok(out)
}
