//! CSV as Relais writes it for reports and exports (RFC 4180), safe to open in a
//! spreadsheet: a field that a spreadsheet would run as a formula is defused.

/// A CSV field, quoted when it holds a separator, a quote or a line break, and prefixed
/// with `'` when it starts like a formula (`=`, `+`, `-`, `@`).
pub fn field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

/// One CSV line (ending in `\n`) of `fields`.
pub fn line<'a>(fields: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = fields.into_iter().map(field).collect::<Vec<_>>().join(",");
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_and_formulas_defused() {
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(field("+33612345678"), "'+33612345678");
        assert_eq!(field("sms"), "sms");
    }

    #[test]
    fn a_line_joins_its_fields() {
        assert_eq!(line(["a", "b,c", ""]), "a,\"b,c\",\n");
    }
}
