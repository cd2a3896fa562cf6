//! `ctl --format`: Go templates over the API's JSON, as `docker … --format`
//! takes them (`{{.name}}`, `{{json .}}`, `table {{.name}}\t{{.kind}}`).
//! The engine is `gotmpl` (a port of Go's text/template); this file adds
//! Docker's helper functions and its `table` prefix.
//!
//! Owns: parsing a format, rendering one JSON value with it. Never: the
//! API calls, or what a command prints without `--format`.

use gotmpl::{Template, TemplateError, Value};

/// A parsed `--format`.
pub struct Format {
    template: Template,
    /// `table …`: print a header row (the field names, upper-cased) and
    /// align the tab-separated columns.
    pub table: Option<Vec<String>>,
}

/// The field names a `table` format names, in order: `{{.name}}` gives
/// `NAME`, `{{json .ports}}` gives `PORTS`, anything else `-`.
fn headers(body: &str) -> Vec<String> {
    body.split('\t')
        .map(|col| {
            let Some(start) = col.find("{{") else {
                return col.trim().to_uppercase();
            };
            let inner = col[start + 2..].split("}}").next().unwrap_or("");
            inner
                .split_whitespace()
                .rev()
                .find(|w| w.starts_with('.'))
                .and_then(|w| w.rsplit('.').find(|s| !s.is_empty()))
                .map(|s| s.replace('_', "-").to_uppercase())
                .unwrap_or_else(|| "-".into())
        })
        .collect()
}

impl Format {
    pub fn parse(src: &str) -> Result<Format, String> {
        // Docker writes `\t` and `\n` as the two characters in a shell word.
        let src = src.replace("\\t", "\t").replace("\\n", "\n");
        let (body, table) = match src.strip_prefix("table") {
            Some(rest) if rest.is_empty() || rest.starts_with(char::is_whitespace) => {
                let body = rest.trim_start().to_string();
                let h = headers(&body);
                (body, Some(h))
            }
            _ => (src, None),
        };
        let template = Template::new("format")
            .func("json", |a: &[Value]| {
                let v = a.first().map(to_json).unwrap_or(serde_json::Value::Null);
                Ok(Value::String(
                    serde_json::to_string(&v).unwrap_or_default().into(),
                ))
            })
            .func("upper", |a: &[Value]| {
                Ok(Value::String(text(a.first()).to_uppercase().into()))
            })
            .func("lower", |a: &[Value]| {
                Ok(Value::String(text(a.first()).to_lowercase().into()))
            })
            .func("join", |a: &[Value]| {
                let sep = text(a.get(1));
                let items: Vec<String> = match a.first() {
                    Some(Value::List(l)) => l.iter().map(|v| text(Some(v))).collect(),
                    other => vec![text(other)],
                };
                Ok(Value::String(items.join(&sep).into()))
            })
            .parse(&body)
            .map_err(|e: TemplateError| format!("--format: {e}"))?;
        Ok(Format { template, table })
    }

    /// `v` through the template (one line per value, as Docker prints it).
    pub fn render(&self, v: &serde_json::Value) -> Result<String, String> {
        let data = gotmpl::to_value(v).map_err(|e| format!("--format: {e}"))?;
        self.template
            .execute_to_string(&data)
            .map_err(|e| format!("--format: {e}"))
    }
}

/// A value as text the way Go's `print` shows it (strings without quotes).
fn text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Nil) => String::new(),
        Some(Value::String(s)) => s.to_string(),
        Some(v) => to_json(v).to_string(),
    }
}

/// A template value back as JSON (for `{{json …}}`).
fn to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Nil => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Uint(u) => J::from(*u),
        Value::Float(f) => J::from(*f),
        Value::String(s) => J::String(s.to_string()),
        Value::List(l) => J::Array(l.iter().map(to_json).collect()),
        Value::Map(m) => J::Object(m.iter().map(|(k, v)| (k.to_string(), to_json(v))).collect()),
        #[allow(unreachable_patterns)] // functions (and, with `html`, safe strings)
        _ => J::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_json_and_helpers_render_as_docker_does() {
        let v = json!({"name": "bd1", "ports": ["p1", "p2"], "aging_secs": 300, "gw": null});
        let r = |f: &str| Format::parse(f).unwrap().render(&v).unwrap();
        assert_eq!(r("{{.name}}"), "bd1");
        assert_eq!(r("{{.name}} {{.aging_secs}}"), "bd1 300");
        assert_eq!(r("{{json .ports}}"), r#"["p1","p2"]"#);
        assert_eq!(r("{{join .ports \",\"}}"), "p1,p2");
        assert_eq!(r("{{upper .name}}"), "BD1");
        assert_eq!(r("{{.name}}\\t{{len .ports}}"), "bd1\t2");
        assert_eq!(r("{{range .ports}}{{.}};{{end}}"), "p1;p2;");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&r("{{json .}}")).unwrap(),
            v
        );
    }

    #[test]
    fn table_formats_name_their_columns() {
        let f = Format::parse("table {{.name}}\\t{{json .aging_secs}}\\tfixed").unwrap();
        assert_eq!(
            f.table.as_deref(),
            Some(&["NAME".to_string(), "AGING-SECS".into(), "FIXED".into()][..])
        );
        assert!(Format::parse("tablet {{.name}}").unwrap().table.is_none());
    }

    #[test]
    fn a_bad_template_is_an_error_naming_the_option() {
        let e = Format::parse("{{.name").err().unwrap();
        assert!(e.starts_with("--format:"), "{e}");
        let e = Format::parse("{{nosuchfunc .name}}")
            .and_then(|f| f.render(&serde_json::json!({"name": "x"})))
            .err()
            .unwrap();
        assert!(e.contains("nosuchfunc"), "{e}");
    }
}
