//! The instrument engine: questionnaires and clinician ratings as versioned
//! data files (TOML), validated when loaded and hashed, and one scorer for all
//! of them. A file names its items and answer scales, how the total, subscales
//! and bands are computed, which answers raise flags (safety flags open a
//! task), and the rules for response and remission. A clinic with a licence
//! for a copyrighted scale adds it by dropping a file in its instruments
//! folder; no code changes.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::versioned::{Versioned, Versions};
use crate::{DomainError, FieldError};

mod outcome;
#[cfg(test)]
mod tests;

pub use outcome::{trend, Point, Trend, TrendStatus};

/// Who answers: the patient, or a clinician rating the patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rater {
    #[serde(rename = "self")]
    Patient,
    Clinician,
}

/// One answer choice: the value scored and the words shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Choice {
    pub value: i32,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    pub id: String,
    pub text: String,
    pub scale: String,
    pub required: bool,
    /// Whether the item counts towards the total (PHQ-9's difficulty item does not).
    pub scored: bool,
    /// Asked only when this holds (C-SSRS branching).
    pub show_if: Option<Cond>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Subscale {
    pub id: String,
    pub label: String,
    pub items: Vec<String>,
}

/// A band of the total (or, for instruments without a total, the first
/// category whose condition holds).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Band {
    pub min: Option<i32>,
    pub max: Option<i32>,
    pub when: Option<Cond>,
    pub label: String,
    /// A stable word for colour and logic: minimal, mild, moderate, severe, ...
    pub level: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Flag {
    pub id: String,
    pub label: String,
    pub when: Cond,
    /// A safety flag shows crisis resources and opens a task a clinician must close.
    pub safety: bool,
}

/// Response and remission rules used by trends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutcomeRules {
    /// Response is a fall of at least this percentage from baseline.
    #[serde(default = "fifty")]
    pub response_fall_percent: i32,
    /// Remission is a total below this.
    pub remission_below: Option<i32>,
    /// After a response, a total at or above this is a relapse (*policy*).
    pub relapse_at_least: Option<i32>,
    /// The smallest change that matters to a patient.
    pub mcid: Option<i32>,
}

fn fifty() -> i32 {
    50
}

/// A condition over answers and scores, written in the file as an inline table:
/// `{ item = "9", at_least = 1 }`, `{ score = "total", at_least = 10 }`,
/// `{ count = 2, of = "D", at_least = 2 }` (at least two items of subscale D
/// answered 2 or more), `{ all = [...] }`, `{ any = [...] }`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cond {
    Item { item: String, min: i32, max: i32 },
    Score { score: String, min: i32, max: i32 },
    Count { of: String, count: usize, min: i32 },
    All(Vec<Cond>),
    Any(Vec<Cond>),
}

/// Instruments with items about suicide, by id, and those items: their
/// files must raise a safety flag on any answer above 0 to each (PHQ-9 item
/// 9; the C-SSRS screener's wish to be dead and suicidal thoughts).
pub const SUICIDE_ITEMS: &[(&str, &[&str])] = &[("phq9", &["9"]), ("cssrs", &["1", "2"])];

impl Cond {
    /// Whether the condition looks at `item` at all.
    pub fn mentions(&self, item: &str) -> bool {
        match self {
            Cond::Item { item: i, .. } => i == item,
            Cond::All(v) | Cond::Any(v) => v.iter().any(|c| c.mentions(item)),
            _ => false,
        }
    }

    /// Whether every answer from 1 to `top` to `item`, alone, makes the
    /// condition hold (the item from 1 up, or an `any` with such a branch).
    pub fn fires_above_zero(&self, item: &str, top: i32) -> bool {
        match self {
            Cond::Item { item: i, min, max } => i == item && *min <= 1 && *max >= top,
            Cond::Any(v) => v.iter().any(|c| c.fires_above_zero(item, top)),
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CondSpec {
    item: Option<String>,
    score: Option<String>,
    count: Option<usize>,
    of: Option<String>,
    at_least: Option<i32>,
    at_most: Option<i32>,
    equals: Option<i32>,
    all: Option<Vec<CondSpec>>,
    any: Option<Vec<CondSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemSpec {
    id: String,
    text: String,
    scale: String,
    #[serde(default = "yes")]
    required: bool,
    #[serde(default = "yes")]
    scored: bool,
    show_if: Option<CondSpec>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscaleSpec {
    id: String,
    label: String,
    items: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BandSpec {
    min: Option<i32>,
    max: Option<i32>,
    when: Option<CondSpec>,
    label: String,
    level: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FlagSpec {
    id: String,
    label: String,
    when: CondSpec,
    #[serde(default)]
    safety: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    id: String,
    version: u32,
    name: String,
    short_name: String,
    rater: Rater,
    prompt: String,
    licence: String,
    #[serde(default)]
    description: String,
    loinc_panel: Option<String>,
    loinc_total: Option<String>,
    /// Whether the instrument has a total (C-SSRS does not).
    #[serde(default = "yes")]
    total: bool,
    scales: BTreeMap<String, Vec<Choice>>,
    items: Vec<ItemSpec>,
    #[serde(default)]
    subscales: Vec<SubscaleSpec>,
    #[serde(default)]
    bands: Vec<BandSpec>,
    #[serde(default)]
    flags: Vec<FlagSpec>,
    outcome: Option<OutcomeRules>,
}

/// A loaded, validated instrument.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Instrument {
    pub id: String,
    pub version: u32,
    pub name: String,
    pub short_name: String,
    pub rater: Rater,
    pub prompt: String,
    pub licence: String,
    pub description: String,
    pub loinc_panel: Option<String>,
    pub loinc_total: Option<String>,
    pub has_total: bool,
    /// The least and greatest total the scored items allow.
    pub range: (i32, i32),
    pub scales: BTreeMap<String, Vec<Choice>>,
    pub items: Vec<Item>,
    pub subscales: Vec<Subscale>,
    pub bands: Vec<Band>,
    pub flags: Vec<Flag>,
    pub outcome: Option<OutcomeRules>,
    /// SHA-256 of the file as loaded; stored with every response.
    pub hash: String,
}

/// The problem with a file, naming where in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("instrument {file}: {message}")]
pub struct FileError {
    pub file: String,
    pub message: String,
}

impl Instrument {
    /// Parses and validates one instrument file. `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Instrument, FileError> {
        let err = |message: String| FileError {
            file: file.to_string(),
            message,
        };
        let spec: FileSpec = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        if !valid_id(&spec.id) {
            return Err(err(format!(
                "id {:?} must be lower-case letters, digits and '-' or '_'",
                spec.id
            )));
        }
        if spec.version == 0 {
            return Err(err("version must be 1 or more".into()));
        }
        for (name, choices) in &spec.scales {
            if choices.is_empty() {
                return Err(err(format!("scale {name:?} has no choices")));
            }
            let values: BTreeSet<i32> = choices.iter().map(|c| c.value).collect();
            if values.len() != choices.len() {
                return Err(err(format!("scale {name:?} repeats a value")));
            }
        }
        if spec.items.is_empty() {
            return Err(err("has no items".into()));
        }
        let mut ids = BTreeSet::new();
        for it in &spec.items {
            if !valid_id(&it.id) {
                return Err(err(format!("item id {:?} is not a valid id", it.id)));
            }
            if !ids.insert(it.id.clone()) {
                return Err(err(format!("item {:?} appears twice", it.id)));
            }
            if !spec.scales.contains_key(&it.scale) {
                return Err(err(format!(
                    "item {:?} uses scale {:?}, which is not defined",
                    it.id, it.scale
                )));
            }
            if it.text.trim().is_empty() {
                return Err(err(format!("item {:?} has no text", it.id)));
            }
        }
        let mut subscales = Vec::new();
        let mut sub_ids = BTreeSet::new();
        for s in &spec.subscales {
            if s.id == "total" || !sub_ids.insert(s.id.clone()) {
                return Err(err(format!(
                    "subscale id {:?} is reserved or repeated",
                    s.id
                )));
            }
            for i in &s.items {
                if !ids.contains(i) {
                    return Err(err(format!(
                        "subscale {:?} names item {i:?}, which does not exist",
                        s.id
                    )));
                }
            }
            subscales.push(Subscale {
                id: s.id.clone(),
                label: s.label.clone(),
                items: s.items.clone(),
            });
        }
        let ctx = Ctx {
            items: &ids,
            subscales: &sub_ids,
            has_total: spec.total,
        };
        let mut items = Vec::new();
        for it in &spec.items {
            let show_if = match &it.show_if {
                Some(c) => Some(
                    ctx.cond(c)
                        .map_err(|m| err(format!("item {:?}: {m}", it.id)))?,
                ),
                None => None,
            };
            items.push(Item {
                id: it.id.clone(),
                text: it.text.trim().to_string(),
                scale: it.scale.clone(),
                required: it.required,
                scored: it.scored,
                show_if,
            });
        }
        let range = items
            .iter()
            .filter(|i| i.scored)
            .fold((0, 0), |(lo, hi), i| {
                let vals = spec.scales[&i.scale].iter().map(|c| c.value);
                (
                    lo + vals.clone().min().unwrap_or(0),
                    hi + vals.max().unwrap_or(0),
                )
            });
        if spec.total && !items.iter().any(|i| i.scored) {
            return Err(err("has a total but no scored items".into()));
        }
        let mut bands = Vec::new();
        for (n, b) in spec.bands.iter().enumerate() {
            let when = match &b.when {
                Some(c) => Some(
                    ctx.cond(c)
                        .map_err(|m| err(format!("band {}: {m}", n + 1)))?,
                ),
                None => None,
            };
            bands.push(Band {
                min: b.min,
                max: b.max,
                when,
                label: b.label.clone(),
                level: b.level.clone(),
            });
        }
        check_bands(&bands, spec.total, range).map_err(err)?;
        let mut flags = Vec::new();
        let mut flag_ids = BTreeSet::new();
        for f in &spec.flags {
            if !flag_ids.insert(f.id.clone()) {
                return Err(err(format!("flag {:?} appears twice", f.id)));
            }
            flags.push(Flag {
                id: f.id.clone(),
                label: f.label.clone(),
                when: ctx
                    .cond(&f.when)
                    .map_err(|m| err(format!("flag {:?}: {m}", f.id)))?,
                safety: f.safety,
            });
        }
        if spec.outcome.is_some() && !spec.total {
            return Err(err("outcome rules need a total".into()));
        }
        // An instrument that asks about suicide keeps its safety flag on that
        // item, whoever edits the file: no version may drop it.
        for (id, items) in SUICIDE_ITEMS {
            if spec.id != *id {
                continue;
            }
            for item in *items {
                let top = spec
                    .items
                    .iter()
                    .find(|i| i.id == *item)
                    .and_then(|i| spec.scales.get(&i.scale))
                    .and_then(|c| c.iter().map(|c| c.value).max())
                    .unwrap_or(1);
                let kept = flags.iter().any(|f| {
                    f.safety && f.when.mentions(item) && f.when.fires_above_zero(item, top)
                });
                if !kept {
                    return Err(err(format!(
                        "item {item:?} asks about suicide: a flag with safety = true must fire on any answer above 0 to it"
                    )));
                }
            }
        }
        let hash = hex::encode(Sha256::digest(text.as_bytes()));
        Ok(Instrument {
            id: spec.id,
            version: spec.version,
            name: spec.name,
            short_name: spec.short_name,
            rater: spec.rater,
            prompt: spec.prompt,
            licence: spec.licence,
            description: spec.description,
            loinc_panel: spec.loinc_panel,
            loinc_total: spec.loinc_total,
            has_total: spec.total,
            range,
            scales: spec.scales,
            items,
            subscales,
            bands,
            flags,
            outcome: spec.outcome,
            hash,
        })
    }

    pub fn choices(&self, item: &Item) -> &[Choice] {
        self.scales
            .get(&item.scale)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    pub fn item(&self, id: &str) -> Option<&Item> {
        self.items.iter().find(|i| i.id == id)
    }

    /// Checks a set of answers and scores them. Every problem is named at
    /// once: unknown items, values that are not a choice, required items left
    /// out. Answers to items that were not asked (a branch not taken) are
    /// dropped, so the stored answers are exactly those asked.
    pub fn score(&self, answers: &BTreeMap<String, i32>) -> Result<Scored, DomainError> {
        let mut errors = Vec::new();
        for (id, v) in answers {
            match self.item(id) {
                None => errors.push(FieldError::new(
                    format!("answers.{id}"),
                    format!(
                        "is not an item of {} version {}",
                        self.short_name, self.version
                    ),
                )),
                Some(item) => {
                    let choices = self.choices(item);
                    if !choices.iter().any(|c| c.value == *v) {
                        let allowed: Vec<String> =
                            choices.iter().map(|c| c.value.to_string()).collect();
                        errors.push(FieldError::new(
                            format!("answers.{id}"),
                            format!("{v} is not an answer; choose one of {}", allowed.join(", ")),
                        ));
                    }
                }
            }
        }
        if !errors.is_empty() {
            return Err(DomainError::Invalid(errors));
        }
        // Branching: an item is asked when its condition holds on the answers
        // given so far (conditions only look at items, never at scores).
        let mut kept = BTreeMap::new();
        for item in &self.items {
            let asked = match &item.show_if {
                None => true,
                Some(c) => self.eval(c, &kept, None, &BTreeMap::new()),
            };
            match (asked, answers.get(&item.id)) {
                (true, Some(v)) => {
                    kept.insert(item.id.clone(), *v);
                }
                (true, None) if item.required => errors.push(FieldError::new(
                    format!("answers.{}", item.id),
                    "is required",
                )),
                _ => {}
            }
        }
        if !errors.is_empty() {
            return Err(DomainError::Invalid(errors));
        }
        let total = self.has_total.then(|| {
            self.items
                .iter()
                .filter(|i| i.scored)
                .filter_map(|i| kept.get(&i.id))
                .sum::<i32>()
        });
        let subscales: BTreeMap<String, i32> = self
            .subscales
            .iter()
            .map(|s| {
                let v = s.items.iter().filter_map(|i| kept.get(i)).sum::<i32>();
                (s.id.clone(), v)
            })
            .collect();
        let band = self
            .bands
            .iter()
            .find(|b| match (&b.when, total) {
                (Some(c), _) => self.eval(c, &kept, total, &subscales),
                (None, Some(t)) => b.min.is_none_or(|m| t >= m) && b.max.is_none_or(|m| t <= m),
                (None, None) => true,
            })
            .map(|b| BandHit {
                label: b.label.clone(),
                level: b.level.clone(),
            });
        let flags: Vec<FlagHit> = self
            .flags
            .iter()
            .filter(|f| self.eval(&f.when, &kept, total, &subscales))
            .map(|f| FlagHit {
                id: f.id.clone(),
                label: f.label.clone(),
                safety: f.safety,
            })
            .collect();
        Ok(Scored {
            instrument: self.id.clone(),
            version: self.version,
            answers: kept,
            total,
            band,
            subscales,
            safety: flags.iter().any(|f| f.safety),
            flags,
        })
    }

    fn eval(
        &self,
        c: &Cond,
        answers: &BTreeMap<String, i32>,
        total: Option<i32>,
        subs: &BTreeMap<String, i32>,
    ) -> bool {
        match c {
            Cond::Item { item, min, max } => {
                answers.get(item).is_some_and(|v| v >= min && v <= max)
            }
            Cond::Score { score, min, max } => {
                let v = if score == "total" {
                    total
                } else {
                    subs.get(score).copied()
                };
                v.is_some_and(|v| v >= *min && v <= *max)
            }
            Cond::Count { of, count, min } => {
                let items = self
                    .subscales
                    .iter()
                    .find(|s| &s.id == of)
                    .map(|s| s.items.as_slice())
                    .unwrap_or(&[]);
                items
                    .iter()
                    .filter(|i| answers.get(*i).is_some_and(|v| v >= min))
                    .count()
                    >= *count
            }
            Cond::All(cs) => cs.iter().all(|c| self.eval(c, answers, total, subs)),
            Cond::Any(cs) => cs.iter().any(|c| self.eval(c, answers, total, subs)),
        }
    }

    /// The band a stored total falls in (for charts drawn from stored totals).
    pub fn band_of(&self, total: i32) -> Option<&Band> {
        self.bands.iter().find(|b| {
            b.when.is_none() && b.min.is_none_or(|m| total >= m) && b.max.is_none_or(|m| total <= m)
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BandHit {
    pub label: String,
    pub level: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlagHit {
    pub id: String,
    pub label: String,
    pub safety: bool,
}

/// A scored set of answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Scored {
    pub instrument: String,
    pub version: u32,
    /// The answers asked, as given (branches not taken are left out).
    pub answers: BTreeMap<String, i32>,
    pub total: Option<i32>,
    pub band: Option<BandHit>,
    pub subscales: BTreeMap<String, i32>,
    pub flags: Vec<FlagHit>,
    /// Whether any safety flag is raised.
    pub safety: bool,
}

fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 40
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

struct Ctx<'a> {
    items: &'a BTreeSet<String>,
    subscales: &'a BTreeSet<String>,
    has_total: bool,
}

impl Ctx<'_> {
    fn cond(&self, c: &CondSpec) -> Result<Cond, String> {
        let bounds = |c: &CondSpec| -> Result<(i32, i32), String> {
            match (c.equals, c.at_least, c.at_most) {
                (Some(v), None, None) => Ok((v, v)),
                (None, lo, hi) if lo.is_some() || hi.is_some() => {
                    Ok((lo.unwrap_or(i32::MIN), hi.unwrap_or(i32::MAX)))
                }
                _ => Err("give `equals`, or `at_least` and/or `at_most`".into()),
            }
        };
        let forms = [
            c.item.is_some(),
            c.score.is_some(),
            c.count.is_some(),
            c.all.is_some(),
            c.any.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if forms != 1 {
            return Err(
                "a condition needs exactly one of `item`, `score`, `count`, `all`, `any`".into(),
            );
        }
        if let Some(item) = &c.item {
            if !self.items.contains(item) {
                return Err(format!(
                    "condition names item {item:?}, which does not exist"
                ));
            }
            let (min, max) = bounds(c)?;
            return Ok(Cond::Item {
                item: item.clone(),
                min,
                max,
            });
        }
        if let Some(score) = &c.score {
            let known = if score == "total" {
                self.has_total
            } else {
                self.subscales.contains(score)
            };
            if !known {
                return Err(format!(
                    "condition names score {score:?}, which does not exist"
                ));
            }
            let (min, max) = bounds(c)?;
            return Ok(Cond::Score {
                score: score.clone(),
                min,
                max,
            });
        }
        if let Some(count) = c.count {
            let of = c.of.clone().ok_or("`count` needs `of` (a subscale)")?;
            if !self.subscales.contains(&of) {
                return Err(format!(
                    "condition counts subscale {of:?}, which does not exist"
                ));
            }
            let min = c.at_least.ok_or("`count` needs `at_least`")?;
            return Ok(Cond::Count { of, count, min });
        }
        let list = |cs: &Vec<CondSpec>| -> Result<Vec<Cond>, String> {
            if cs.is_empty() {
                return Err("`all` and `any` need at least one condition".into());
            }
            cs.iter().map(|c| self.cond(c)).collect()
        };
        if let Some(cs) = &c.all {
            return Ok(Cond::All(list(cs)?));
        }
        match &c.any {
            Some(cs) => Ok(Cond::Any(list(cs)?)),
            None => Err("empty condition".into()),
        }
    }
}

/// Bands on a total must cover the whole range without gaps or overlaps,
/// in order; bands without a total are categories by condition, and only the
/// last may lack one (the fallback).
fn check_bands(bands: &[Band], has_total: bool, range: (i32, i32)) -> Result<(), String> {
    if bands.is_empty() {
        return Ok(());
    }
    if !has_total {
        for (n, b) in bands.iter().enumerate() {
            if b.min.is_some() || b.max.is_some() {
                return Err("bands without a total use `when`, not min/max".into());
            }
            if b.when.is_none() && n + 1 != bands.len() {
                return Err("only the last category may be a fallback without `when`".into());
            }
        }
        return Ok(());
    }
    let mut next = range.0;
    for b in bands {
        if b.when.is_some() {
            return Err("bands on a total use min/max, not `when`".into());
        }
        let (Some(lo), Some(hi)) = (b.min, b.max) else {
            return Err(format!("band {:?} needs min and max", b.label));
        };
        if lo != next || hi < lo {
            return Err(format!(
                "band {:?} ({lo}-{hi}) should start at {next}: bands must cover {}-{} in order",
                b.label, range.0, range.1
            ));
        }
        next = hi + 1;
    }
    if next != range.1 + 1 {
        return Err(format!(
            "bands end at {} but totals reach {}",
            next - 1,
            range.1
        ));
    }
    Ok(())
}

/// The instruments this build ships, as (file name, text).
pub const BUILTIN: &[(&str, &str)] = &[
    ("gad7.toml", include_str!("../../instruments/gad7.toml")),
    ("gad2.toml", include_str!("../../instruments/gad2.toml")),
    ("phq9.toml", include_str!("../../instruments/phq9.toml")),
    ("phq2.toml", include_str!("../../instruments/phq2.toml")),
    ("pcl5.toml", include_str!("../../instruments/pcl5.toml")),
    ("oasis.toml", include_str!("../../instruments/oasis.toml")),
    ("hama.toml", include_str!("../../instruments/hama.toml")),
    ("cssrs.toml", include_str!("../../instruments/cssrs.toml")),
    ("cadss6.toml", include_str!("../../instruments/cadss6.toml")),
    ("moaas.toml", include_str!("../../instruments/moaas.toml")),
    (
        "aldrete.toml",
        include_str!("../../instruments/aldrete.toml"),
    ),
];

/// Every loaded instrument version, and the current (highest) version of each.
#[derive(Debug, Clone, Default)]
pub struct Registry(Versions<Instrument>);

impl std::ops::Deref for Registry {
    type Target = Versions<Instrument>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Versioned for Instrument {
    fn id(&self) -> &str {
        &self.id
    }
    fn version(&self) -> u32 {
        self.version
    }
    fn hash(&self) -> &str {
        &self.hash
    }
}

impl Registry {
    /// The shipped instruments plus `extra` files (a clinic's own), all
    /// validated. A version that repeats one already loaded with different
    /// content is refused: a published version never changes.
    pub fn load(extra: &[(String, String)]) -> Result<Registry, FileError> {
        let mut r = Versions::default();
        let builtin = BUILTIN.iter().map(|(f, t)| (f.to_string(), t.to_string()));
        for (file, text) in builtin.chain(extra.iter().cloned()) {
            let i = Instrument::parse(&file, &text)?;
            r.insert(i).map_err(|message| FileError { file, message })?;
        }
        Ok(Registry(r))
    }

    pub fn builtin() -> Registry {
        // The shipped files are tested; a failure here is a build defect.
        Registry::load(&[]).unwrap_or_default()
    }
}

/// When a rule sends a questionnaire link by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// This many hours before each dosing visit (the link works until it starts).
    BeforeDose { hours: i64 },
    /// This many hours after each completed dosing visit.
    AfterDose { hours: i64 },
    /// Weekly in follow-up: a dose in the last 26 weeks, none in the last
    /// week or the next two, and not in a maintenance course.
    WeeklyInFollowUp,
    /// Monthly in maintenance: a weekly or every-other-week course with a
    /// dose within 45 days either side.
    MonthlyInMaintenance,
}

/// A rule: which instrument, when, and how long its link works.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkRule {
    pub instrument: &'static str,
    pub trigger: Trigger,
    pub valid_hours: i64,
}

/// The default rules (*policy*; a clinic setting in time).
pub const DEFAULT_LINK_RULES: [LinkRule; 7] = [
    LinkRule {
        instrument: "gad7",
        trigger: Trigger::BeforeDose { hours: 24 },
        valid_hours: 24,
    },
    LinkRule {
        instrument: "phq9",
        trigger: Trigger::BeforeDose { hours: 24 },
        valid_hours: 24,
    },
    LinkRule {
        instrument: "gad7",
        trigger: Trigger::AfterDose { hours: 24 },
        valid_hours: 72,
    },
    LinkRule {
        instrument: "gad7",
        trigger: Trigger::WeeklyInFollowUp,
        valid_hours: 72,
    },
    LinkRule {
        instrument: "phq9",
        trigger: Trigger::WeeklyInFollowUp,
        valid_hours: 72,
    },
    LinkRule {
        instrument: "gad7",
        trigger: Trigger::MonthlyInMaintenance,
        valid_hours: 168,
    },
    LinkRule {
        instrument: "phq9",
        trigger: Trigger::MonthlyInMaintenance,
        valid_hours: 168,
    },
];

/// A dosing visit as the rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoseVisit {
    pub id: String,
    pub clinic: crate::ids::ClinicId,
    pub patient: crate::ids::PatientId,
    pub start: i64,
    pub end: i64,
    pub completed: bool,
    /// Part of a weekly or every-other-week course.
    pub maintenance: bool,
}

/// A link a rule wants sent now. `key` is unique per occasion, so a rule
/// evaluated again sends nothing twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueLink {
    pub key: String,
    pub clinic: crate::ids::ClinicId,
    pub patient: crate::ids::PatientId,
    pub instrument: &'static str,
    pub expires_at: i64,
    pub reason: String,
}

const RULE_HOUR: i64 = 3_600_000_000;
const RULE_DAY: i64 = 24 * RULE_HOUR;

/// The links due at `now` given the dosing visits around it (booked,
/// checked in or completed; cancelled ones are left out by the caller).
/// Occasions older than a day are not sent late.
pub fn due_links(now: i64, visits: &[DoseVisit], rules: &[LinkRule]) -> Vec<DueLink> {
    let mut out = Vec::new();
    let mut by_patient: BTreeMap<crate::ids::PatientId, Vec<&DoseVisit>> = BTreeMap::new();
    for v in visits {
        by_patient.entry(v.patient).or_default().push(v);
    }
    for r in rules {
        match r.trigger {
            Trigger::BeforeDose { hours } => {
                for v in visits {
                    let send_at = v.start - hours * RULE_HOUR;
                    if send_at <= now && now < v.start && now - send_at < RULE_DAY {
                        out.push(DueLink {
                            key: format!("before:{}:{}", v.id, r.instrument),
                            clinic: v.clinic,
                            patient: v.patient,
                            instrument: r.instrument,
                            expires_at: v.start.min(now + r.valid_hours * RULE_HOUR),
                            reason: "Before your next dosing session".into(),
                        });
                    }
                }
            }
            Trigger::AfterDose { hours } => {
                for v in visits.iter().filter(|v| v.completed) {
                    let send_at = v.end + hours * RULE_HOUR;
                    if send_at <= now && now - send_at < RULE_DAY {
                        out.push(DueLink {
                            key: format!("after:{}:{}", v.id, r.instrument),
                            clinic: v.clinic,
                            patient: v.patient,
                            instrument: r.instrument,
                            expires_at: now + r.valid_hours * RULE_HOUR,
                            reason: "The day after your dosing session".into(),
                        });
                    }
                }
            }
            Trigger::WeeklyInFollowUp => {
                for (p, vs) in &by_patient {
                    let last_done = vs.iter().filter(|v| v.completed).map(|v| v.start).max();
                    let Some(last) = last_done else { continue };
                    let active = vs
                        .iter()
                        .any(|v| v.start > now - 7 * RULE_DAY && v.start < now + 14 * RULE_DAY);
                    let maintenance = vs.iter().any(|v| v.maintenance);
                    if active || maintenance || last < now - 26 * 7 * RULE_DAY {
                        continue;
                    }
                    let week = now.div_euclid(7 * RULE_DAY);
                    out.push(DueLink {
                        key: format!("week:{p}:{week}:{}", r.instrument),
                        clinic: vs[0].clinic,
                        patient: *p,
                        instrument: r.instrument,
                        expires_at: now + r.valid_hours * RULE_HOUR,
                        reason: "Weekly check-in after treatment".into(),
                    });
                }
            }
            Trigger::MonthlyInMaintenance => {
                for (p, vs) in &by_patient {
                    let in_course = vs
                        .iter()
                        .any(|v| v.maintenance && (v.start - now).abs() <= 45 * RULE_DAY);
                    if !in_course {
                        continue;
                    }
                    let month = now.div_euclid(30 * RULE_DAY);
                    out.push(DueLink {
                        key: format!("month:{p}:{month}:{}", r.instrument),
                        clinic: vs[0].clinic,
                        patient: *p,
                        instrument: r.instrument,
                        expires_at: now + r.valid_hours * RULE_HOUR,
                        reason: "Monthly check-in during maintenance".into(),
                    });
                }
            }
        }
    }
    out
}
