//! Checking a customer's answer to an `ask` node: what a choice, a number, a date, an
//! e-mail address or a phone number written by a person looks like, and the value kept
//! (`"Oui"` for `"oui !"`, `"2026-12-24"` for `"24/12"`, `"+33612345678"` for
//! `"06 12 34 56 78"`), or the values of a form filled in (`{"date": "2026-12-24", …}`).

use crate::channel::ChannelKind;
use crate::contact::{AddressRules, normalize_address};
use crate::content::{Form, FormFieldKind};
use crate::keywords::normalize;
use crate::phone::normalize_phone;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longest free-text answer kept.
pub const MAX_ANSWER_CHARS: usize = 1000;
/// Longest form answer (the JSON of its values), as the web chat widget sends it.
pub const MAX_FORM_ANSWER_BYTES: usize = 4096;
/// Largest compiled `pattern`: the regex engine runs in linear time, and this bounds its
/// memory.
const PATTERN_SIZE_LIMIT: usize = 256 * 1024;

/// What an answer must be.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerCheck {
    #[serde(rename = "type", default)]
    pub kind: AnswerKind,
    /// For `choice`: the accepted answers (also offered as quick replies).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
    /// For `text`: a regular expression the answer must match (anchor it with `^…$` to
    /// match the whole answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// For `number`: bounds, inclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerKind {
    #[default]
    Text,
    Choice,
    Number,
    Date,
    Email,
    Phone,
    /// The values of a form (content `form`), which the widget sends as the payload: a
    /// JSON object of the fields' names and values.
    Form,
}

/// What is wrong with a field of a form filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FormFieldProblem {
    #[error("required")]
    Required,
    #[error("not {0}")]
    NotOfItsKind(&'static str),
}

/// Why an answer was not taken; [`AnswerError::hint`] tells the customer what is expected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AnswerError {
    #[error("the answer is empty")]
    Empty,
    #[error("the answer is longer than {MAX_ANSWER_CHARS} characters")]
    TooLong,
    #[error("`{0}` is not one of the choices")]
    NotAChoice(String),
    #[error("`{0}` is not a number")]
    NotANumber(String),
    #[error("{value} is outside {min:?}..{max:?}")]
    OutOfRange {
        value: f64,
        min: Option<f64>,
        max: Option<f64>,
    },
    #[error("`{0}` is not a date")]
    NotADate(String),
    #[error("`{0}` is not an e-mail address")]
    NotAnEmail(String),
    #[error("`{0}` is not a phone number")]
    NotAPhone(String),
    #[error("`{0}` does not have the expected form")]
    NoMatch(String),
    #[error("the answer is not the values of a form (a JSON object of texts): {0}")]
    NotAForm(String),
    /// A field of a form filled in: `field` is its label, as the customer saw it.
    #[error("{field}: {why}")]
    BadFormField {
        field: String,
        why: FormFieldProblem,
    },
    #[error("the pattern is not a valid regular expression: {0}")]
    BadPattern(String),
}

impl AnswerCheck {
    /// The check's pattern, compiled; an error names what is wrong with it.
    pub fn compiled_pattern(&self) -> Result<Option<regex::Regex>, AnswerError> {
        self.pattern
            .as_deref()
            .map(|p| {
                regex::RegexBuilder::new(p)
                    .size_limit(PATTERN_SIZE_LIMIT)
                    .build()
                    .map_err(|e| AnswerError::BadPattern(e.to_string()))
            })
            .transpose()
    }

    /// What the customer is told after an answer that does not fit, in `language`
    /// (`fr`, otherwise English).
    pub fn hint(&self, language: Option<&str>) -> String {
        let fr = language == Some("fr");
        match self.kind {
            AnswerKind::Choice => {
                let list = self.choices.join(", ");
                if fr {
                    format!("Merci de répondre par l'un de ces choix : {list}.")
                } else {
                    format!("Please answer with one of: {list}.")
                }
            }
            AnswerKind::Number if fr => "Merci de répondre par un nombre.".into(),
            AnswerKind::Number => "Please answer with a number.".into(),
            AnswerKind::Date if fr => {
                "Merci de répondre par une date, par exemple 24/12/2026.".into()
            }
            AnswerKind::Date => "Please answer with a date, for example 2026-12-24.".into(),
            AnswerKind::Email if fr => "Merci de répondre par une adresse e-mail.".into(),
            AnswerKind::Email => "Please answer with an e-mail address.".into(),
            AnswerKind::Phone if fr => "Merci de répondre par un numéro de téléphone.".into(),
            AnswerKind::Phone => "Please answer with a phone number.".into(),
            AnswerKind::Form if fr => "Merci de remplir le formulaire et de l'envoyer.".into(),
            AnswerKind::Form => "Please fill in the form and send it.".into(),
            AnswerKind::Text if fr => "Je n'ai pas compris votre réponse.".into(),
            AnswerKind::Text => "Sorry, I did not get that.".into(),
        }
    }
}

impl AnswerError {
    /// What the customer is told after a form filled in with a field that does not fit,
    /// naming the field, in `language` (`fr`, otherwise English).
    pub fn form_hint(&self, language: Option<&str>) -> Option<String> {
        let AnswerError::BadFormField { field, why } = self else {
            return None;
        };
        Some(
            match (language == Some("fr"), *why == FormFieldProblem::Required) {
                (true, true) => format!("Merci de remplir « {field} »."),
                (true, false) => format!("Merci de vérifier « {field} »."),
                (false, true) => format!("Please fill in “{field}”."),
                (false, false) => format!("Please check “{field}”: {why}."),
            },
        )
    }
}

/// What an answer is checked against besides itself.
#[derive(Debug, Clone, Copy)]
pub struct AnswerContext {
    /// Today, in the contact's time zone: `demain` and `24/12` are read from it.
    pub today: Date,
    pub default_country: Option<phonenumber::country::Id>,
}

/// The value kept for `input`, or why it does not fit `check`.
pub fn check_answer(
    check: &AnswerCheck,
    input: &str,
    context: &AnswerContext,
) -> Result<Value, AnswerError> {
    let input = input.trim();
    if input.is_empty() {
        return Err(AnswerError::Empty);
    }
    if check.kind == AnswerKind::Form {
        return form_values(input);
    }
    if input.chars().count() > MAX_ANSWER_CHARS {
        return Err(AnswerError::TooLong);
    }
    match check.kind {
        AnswerKind::Form => form_values(input),
        AnswerKind::Text => {
            if let Some(pattern) = check.compiled_pattern()?
                && !pattern.is_match(input)
            {
                return Err(AnswerError::NoMatch(input.to_owned()));
            }
            Ok(Value::String(input.to_owned()))
        }
        AnswerKind::Choice => choice(&check.choices, input)
            .map(|c| Value::String(c.to_owned()))
            .ok_or_else(|| AnswerError::NotAChoice(input.to_owned())),
        AnswerKind::Number => {
            let value = number(input).ok_or_else(|| AnswerError::NotANumber(input.to_owned()))?;
            let below = check.min.is_some_and(|min| value < min);
            let above = check.max.is_some_and(|max| value > max);
            if below || above {
                return Err(AnswerError::OutOfRange {
                    value,
                    min: check.min,
                    max: check.max,
                });
            }
            Ok(number_value(value))
        }
        AnswerKind::Date => date(input, context.today)
            .map(|d| Value::String(d.to_string()))
            .ok_or_else(|| AnswerError::NotADate(input.to_owned())),
        AnswerKind::Email => email(input)
            .map(Value::String)
            .ok_or_else(|| AnswerError::NotAnEmail(input.to_owned())),
        AnswerKind::Phone => phone(input, context)
            .map(Value::String)
            .ok_or_else(|| AnswerError::NotAPhone(input.to_owned())),
    }
}

/// The values of `form` filled in (`input`, the JSON object the widget sends), each read
/// by its field's kind as an answer of that kind is (`"06 12 34 56 78"` kept as
/// `"+33612345678"`, `"2"` as a choice's second option, `"14h30"` as `"14:30"`), or the first
/// field that does not fit: a required one left empty, a value not of its kind. Names the
/// form does not have are dropped: what is kept is what the form asked.
pub fn check_form_answer(
    form: &Form,
    input: &str,
    context: &AnswerContext,
) -> Result<Value, AnswerError> {
    let input = input.trim();
    if input.is_empty() {
        return Err(AnswerError::Empty);
    }
    let Value::Object(mut given) = form_values(input)? else {
        return Err(AnswerError::NotAForm("not a JSON object".into()));
    };
    let mut kept = serde_json::Map::new();
    for field in &form.fields {
        let value = given
            .remove(&field.name)
            .and_then(|v| v.as_str().map(|t| t.trim().to_owned()))
            .unwrap_or_default();
        let bad = |kind: &'static str| AnswerError::BadFormField {
            field: field.label.clone(),
            why: FormFieldProblem::NotOfItsKind(kind),
        };
        if value.is_empty() {
            if field.required {
                return Err(AnswerError::BadFormField {
                    field: field.label.clone(),
                    why: FormFieldProblem::Required,
                });
            }
            continue;
        }
        let read = match field.kind {
            FormFieldKind::Text => Value::String(value),
            FormFieldKind::Email => email(&value)
                .map(Value::String)
                .ok_or_else(|| bad("an e-mail address"))?,
            FormFieldKind::Phone => phone(&value, context)
                .map(Value::String)
                .ok_or_else(|| bad("a phone number"))?,
            FormFieldKind::Number => number(&value)
                .map(number_value)
                .ok_or_else(|| bad("a number"))?,
            FormFieldKind::Date => date(&value, context.today)
                .map(|d| Value::String(d.to_string()))
                .ok_or_else(|| bad("a date"))?,
            FormFieldKind::Time => time(&value)
                .map(|t| Value::String(t.strftime("%H:%M").to_string()))
                .ok_or_else(|| bad("a time of day"))?,
            FormFieldKind::Choice => choice(&field.options, &value)
                .map(|c| Value::String(c.to_owned()))
                .ok_or_else(|| bad("one of the choices"))?,
        };
        kept.insert(field.name.clone(), read);
    }
    if kept.is_empty() {
        return Err(AnswerError::Empty);
    }
    Ok(Value::Object(kept))
}

/// An e-mail address as it is kept: normalised as a contact's e-mail identity is.
fn email(input: &str) -> Option<String> {
    let rules = AddressRules {
        default_country: None,
    };
    normalize_address(ChannelKind::Email, input, rules).ok()
}

/// A phone number as it is kept: E.164, a national number read in the tenant's country.
fn phone(input: &str, context: &AnswerContext) -> Option<String> {
    normalize_phone(input, context.default_country)
        .ok()
        .map(|p| p.into_string())
}

/// A number kept as JSON: an integer when it is one.
fn number_value(value: f64) -> Value {
    if value.fract() == 0.0 && value.abs() < 9e15 {
        return Value::from(value as i64);
    }
    serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number)
}

/// A time of day as people write it: `14:30` (what a browser's time field sends, seconds
/// allowed), `14h30`, `14h`, `9 h 05`.
fn time(input: &str) -> Option<jiff::civil::Time> {
    let compact: String = input
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_lowercase();
    let parts: Vec<&str> = compact.split([':', 'h']).collect();
    let (hour, minute, second) = match parts.as_slice() {
        [h, m] => (*h, if m.is_empty() { "0" } else { m }, "0"),
        [h, m, s] => (*h, *m, *s),
        _ => return None,
    };
    let digits = |s: &str, max: usize| {
        (!s.is_empty() && s.len() <= max && s.chars().all(|c| c.is_ascii_digit())).then_some(())
    };
    digits(hour, 2)?;
    digits(minute, 2)?;
    digits(second, 2)?;
    jiff::civil::Time::new(
        hour.parse().ok()?,
        minute.parse().ok()?,
        second.parse().ok()?,
        0,
    )
    .ok()
}

/// A form's values: a JSON object whose values are texts (each at most
/// [`MAX_ANSWER_CHARS`]), as the widget sends them. Anything else is words, not a form.
fn form_values(input: &str) -> Result<Value, AnswerError> {
    let not_a_form = |why: &str| AnswerError::NotAForm(why.to_owned());
    if input.len() > MAX_FORM_ANSWER_BYTES {
        return Err(not_a_form("longer than 4096 bytes"));
    }
    let Ok(Value::Object(values)) = serde_json::from_str::<Value>(input) else {
        return Err(not_a_form("not a JSON object"));
    };
    if values.is_empty() {
        return Err(AnswerError::Empty);
    }
    for (name, value) in &values {
        match value {
            Value::String(text) if text.chars().count() <= MAX_ANSWER_CHARS => {}
            _ => return Err(not_a_form(&format!("`{name}` is not a text"))),
        }
    }
    Ok(Value::Object(values))
}

/// The choice `input` names: by its words (case, accents and punctuation aside), or by
/// its number in the list (`2`).
fn choice<'a>(choices: &'a [String], input: &str) -> Option<&'a str> {
    let words = normalize(input);
    if let Some(found) = choices.iter().find(|c| normalize(c) == words) {
        return Some(found);
    }
    match words.as_slice() {
        [n] => n
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=choices.len()).contains(n))
            .map(|n| choices[n - 1].as_str()),
        _ => None,
    }
}

/// A number as people write it: `12`, `12,5`, `1 200`, `-3`.
fn number(input: &str) -> Option<f64> {
    let compact: String = input
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '\u{202f}')
        .map(|c| if c == ',' { '.' } else { c })
        .collect();
    let value: f64 = compact.parse().ok()?;
    value.is_finite().then_some(value)
}

const MONTHS: &[(&str, i8)] = &[
    ("janvier", 1),
    ("january", 1),
    ("jan", 1),
    ("fevrier", 2),
    ("february", 2),
    ("feb", 2),
    ("fev", 2),
    ("mars", 3),
    ("march", 3),
    ("mar", 3),
    ("avril", 4),
    ("april", 4),
    ("apr", 4),
    ("avr", 4),
    ("mai", 5),
    ("may", 5),
    ("juin", 6),
    ("june", 6),
    ("jun", 6),
    ("juillet", 7),
    ("july", 7),
    ("jul", 7),
    ("aout", 8),
    ("august", 8),
    ("aug", 8),
    ("septembre", 9),
    ("september", 9),
    ("sep", 9),
    ("sept", 9),
    ("octobre", 10),
    ("october", 10),
    ("oct", 10),
    ("novembre", 11),
    ("november", 11),
    ("nov", 11),
    ("decembre", 12),
    ("december", 12),
    ("dec", 12),
];

/// A date as people write it: `2026-12-24`, `24/12/2026`, `24/12/26`, `24.12`,
/// `24 décembre`, `December 24, 2026`, `aujourd'hui`, `demain`, `après-demain`,
/// `tomorrow`. A day and month without a year is the next such day from `today`.
fn date(input: &str, today: Date) -> Option<Date> {
    let words = normalize(input);
    let relative = match words
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["aujourd", "hui"] | ["today"] => Some(0),
        ["demain"] | ["tomorrow"] => Some(1),
        ["apres", "demain"] | ["day", "after", "tomorrow"] => Some(2),
        _ => None,
    };
    if let Some(days) = relative {
        return today.checked_add(jiff::Span::new().days(days)).ok();
    }
    let (mut day, mut month, mut year): (Option<i8>, Option<i8>, Option<i16>) = (None, None, None);
    if words.len() == 1 || words.iter().all(|w| w.chars().all(|c| c.is_ascii_digit())) {
        // Digits only: 2026-12-24 (year first) or 24/12/2026, 24/12/26, 24/12.
        let parts: Vec<&str> = words.iter().map(String::as_str).collect();
        match parts.as_slice() {
            [y, m, d] if y.len() == 4 => {
                year = y.parse().ok();
                month = m.parse().ok();
                day = d.parse().ok();
            }
            [d, m, y] if y.len() == 4 || y.len() == 2 => {
                day = d.parse().ok();
                month = m.parse().ok();
                year = y
                    .parse::<i16>()
                    .ok()
                    .map(|y| if y < 100 { 2000 + y } else { y });
            }
            [d, m] => {
                day = d.parse().ok();
                month = m.parse().ok();
            }
            _ => return None,
        }
    } else {
        // With a month's name: 24 décembre 2026, December 24 2026, le 3 mai.
        for word in &words {
            if let Some((_, m)) = MONTHS.iter().find(|(name, _)| name == word) {
                if month.is_some() {
                    return None;
                }
                month = Some(*m);
            } else if let Ok(n) = word.parse::<i16>() {
                if n > 31 {
                    if year.is_some() {
                        return None;
                    }
                    year = Some(n);
                } else if day.is_none() {
                    day = i8::try_from(n).ok();
                } else {
                    return None;
                }
            } else if !matches!(
                word.as_str(),
                "le" | "the" | "on" | "of" | "er" | "st" | "nd" | "rd" | "th"
            ) {
                return None;
            }
        }
    }
    let (day, month) = (day?, month?);
    match year {
        Some(year) => Date::new(year, month, day).ok(),
        None => {
            let this_year = Date::new(today.year(), month, day).ok()?;
            if this_year >= today {
                Some(this_year)
            } else {
                Date::new(today.year() + 1, month, day).ok()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> AnswerContext {
        AnswerContext {
            today: Date::new(2026, 12, 3).unwrap(),
            default_country: Some(phonenumber::country::Id::FR),
        }
    }

    fn check(kind: AnswerKind) -> AnswerCheck {
        AnswerCheck {
            kind,
            ..AnswerCheck::default()
        }
    }

    #[test]
    fn a_form_answer_is_the_object_of_its_values() {
        let form = check(AnswerKind::Form);
        assert_eq!(
            check_answer(
                &form,
                r#"{"date": "2026-12-24", "slot": "10:00"}"#,
                &context()
            ),
            Ok(serde_json::json!({"date": "2026-12-24", "slot": "10:00"}))
        );
        for words in [
            "mardi 10 h",
            "[]",
            "{}",
            r#"{"n": 3}"#,
            r#"{"n": {"x": "y"}}"#,
        ] {
            assert!(
                check_answer(&form, words, &context()).is_err(),
                "{words} is not a form's values"
            );
        }
        let long = format!(r#"{{"note": "{}"}}"#, "x".repeat(1001));
        assert!(check_answer(&form, &long, &context()).is_err());
    }

    fn appointment() -> Form {
        serde_json::from_value(serde_json::json!({
            "title": "Rendez-vous",
            "fields": [
                {"name": "date", "label": "Date", "kind": "date"},
                {"name": "slot", "label": "Créneau", "kind": "choice", "options": ["10:00", "14:00"]},
                {"name": "at", "label": "Heure", "kind": "time", "required": false},
                {"name": "mobile", "label": "Mobile", "kind": "phone"},
                {"name": "mail", "label": "E-mail", "kind": "email", "required": false},
                {"name": "guests", "label": "Personnes", "kind": "number", "required": false}
            ]
        }))
        .expect("a form")
    }

    #[test]
    fn a_forms_values_are_read_by_their_fields_kinds() {
        let kept = check_form_answer(
            &appointment(),
            r#"{"date": "24/12", "slot": "2", "at": "9 h 05", "mobile": "06 12 34 56 78",
                "mail": " Ana@Example.com ", "guests": "2", "admin": "yes"}"#,
            &context(),
        );
        assert_eq!(
            kept,
            Ok(
                serde_json::json!({"date": "2026-12-24", "slot": "14:00", "at": "09:05",
                "mobile": "+33612345678", "mail": "ana@example.com", "guests": 2})
            ),
            "each value as its kind keeps it; a name the form has not is dropped"
        );
        assert_eq!(
            check_form_answer(
                &appointment(),
                r#"{"date": "2026-12-24", "slot": "10:00", "mobile": "+33612345678", "at": ""}"#,
                &context()
            ),
            Ok(
                serde_json::json!({"date": "2026-12-24", "slot": "10:00", "mobile": "+33612345678"})
            ),
            "optional fields may stay empty"
        );
    }

    #[test]
    fn a_form_with_a_required_field_empty_or_a_value_not_of_its_kind_is_refused() {
        let refused = |input: &str| check_form_answer(&appointment(), input, &context());
        for (input, field, why) in [
            (
                r#"{"slot": "10:00", "mobile": "0612345678"}"#,
                "Date",
                "required",
            ),
            (
                r#"{"date": "2026-12-24", "slot": "10:00", "mobile": " "}"#,
                "Mobile",
                "required",
            ),
            (
                r#"{"date": "bientôt", "slot": "10:00", "mobile": "0612345678"}"#,
                "Date",
                "a date",
            ),
            (
                r#"{"date": "2026-12-24", "slot": "18:00", "mobile": "0612345678"}"#,
                "Créneau",
                "one of the choices",
            ),
            (
                r#"{"date": "2026-12-24", "slot": "10:00", "mobile": "appelez-moi"}"#,
                "Mobile",
                "a phone number",
            ),
            (
                r#"{"date": "2026-12-24", "slot": "10:00", "mobile": "0612345678", "at": "25:00"}"#,
                "Heure",
                "a time of day",
            ),
            (
                r#"{"date": "2026-12-24", "slot": "10:00", "mobile": "0612345678", "mail": "ana@"}"#,
                "E-mail",
                "an e-mail address",
            ),
            (
                r#"{"date": "2026-12-24", "slot": "10:00", "mobile": "0612345678", "guests": "deux"}"#,
                "Personnes",
                "a number",
            ),
        ] {
            let why = match why {
                "required" => FormFieldProblem::Required,
                kind => FormFieldProblem::NotOfItsKind(kind),
            };
            assert_eq!(
                refused(input),
                Err(AnswerError::BadFormField {
                    field: field.into(),
                    why
                }),
                "{input}"
            );
        }
        assert!(matches!(
            refused("mardi 10 h"),
            Err(AnswerError::NotAForm(_))
        ));
    }

    #[test]
    fn times_are_read_as_people_write_them() {
        for (input, expected) in [
            ("14:30", "14:30:00"),
            ("14:30:15", "14:30:15"),
            ("14h", "14:00:00"),
            ("9 h 05", "09:05:00"),
            ("14H30", "14:30:00"),
        ] {
            assert_eq!(
                time(input).map(|t| t.to_string()),
                Some(expected.into()),
                "{input}"
            );
        }
        for bad in ["", "14", "24:00", "14:60", "1430", "two", "14:3x", "-1:00"] {
            assert_eq!(time(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_choice_is_taken_by_its_words_or_its_number() {
        let mut yes_no = check(AnswerKind::Choice);
        yes_no.choices = vec!["Oui".into(), "Non merci".into()];
        assert_eq!(check_answer(&yes_no, "oui !", &context()), Ok("Oui".into()));
        assert_eq!(
            check_answer(&yes_no, "NON, merci", &context()),
            Ok("Non merci".into())
        );
        assert_eq!(
            check_answer(&yes_no, "2", &context()),
            Ok("Non merci".into())
        );
        assert!(check_answer(&yes_no, "3", &context()).is_err());
        assert!(check_answer(&yes_no, "peut-être", &context()).is_err());
    }

    #[test]
    fn dates_are_read_as_people_write_them() {
        let c = context();
        let d = check(AnswerKind::Date);
        for (input, expected) in [
            ("2026-12-24", "2026-12-24"),
            ("24/12/2026", "2026-12-24"),
            ("24/12/26", "2026-12-24"),
            ("24.12", "2026-12-24"),
            ("2/1", "2027-01-02"),
            ("24 décembre 2026", "2026-12-24"),
            ("le 3 mai", "2027-05-03"),
            ("December 24, 2026", "2026-12-24"),
            ("demain ?", "2026-12-04"),
            ("Après-demain", "2026-12-05"),
            ("aujourd'hui", "2026-12-03"),
        ] {
            assert_eq!(check_answer(&d, input, &c), Ok(expected.into()), "{input}");
        }
        for bad in [
            "31/02/2026",
            "bientôt",
            "la semaine prochaine",
            "24 décembre mai",
            "12345",
        ] {
            assert!(check_answer(&d, bad, &c).is_err(), "{bad}");
        }
    }

    #[test]
    fn numbers_emails_and_phones_are_normalised() {
        let c = context();
        let mut n = check(AnswerKind::Number);
        n.min = Some(1.0);
        n.max = Some(9.0);
        assert_eq!(check_answer(&n, " 3 ", &c), Ok(Value::from(3)));
        assert_eq!(check_answer(&n, "2,5", &c), Ok(Value::from(2.5)));
        assert!(matches!(
            check_answer(&n, "12", &c),
            Err(AnswerError::OutOfRange { .. })
        ));
        assert!(check_answer(&n, "trois", &c).is_err());
        assert_eq!(
            check_answer(&check(AnswerKind::Email), "Ana@Example.com", &c),
            Ok("ana@example.com".into())
        );
        assert!(check_answer(&check(AnswerKind::Email), "ana at example", &c).is_err());
        assert_eq!(
            check_answer(&check(AnswerKind::Phone), "06 12 34 56 78", &c),
            Ok("+33612345678".into())
        );
        assert!(check_answer(&check(AnswerKind::Phone), "call me", &c).is_err());
    }

    #[test]
    fn a_text_answer_may_have_to_match_a_pattern() {
        let mut booking = check(AnswerKind::Text);
        booking.pattern = Some("^[A-Z0-9]{6}$".into());
        assert_eq!(
            check_answer(&booking, " AB12CD ", &context()),
            Ok("AB12CD".into())
        );
        assert!(matches!(
            check_answer(&booking, "my booking", &context()),
            Err(AnswerError::NoMatch(_))
        ));
        assert_eq!(
            check_answer(&booking, "   ", &context()),
            Err(AnswerError::Empty)
        );
    }
}
