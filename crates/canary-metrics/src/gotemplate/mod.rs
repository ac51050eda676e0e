//! Go's `text/template`, as Flagger renders MetricTemplate queries (`RenderQuery`: the
//! model's functions, no data, `missingkey=error`): text and `{{ }}` actions with `{{-`
//! and `-}}` trimming and `/* */` comments; pipelines (`a | b`), parenthesised pipelines,
//! variables (`$x := ...`, `$x = ...`, `$`), field and key chains (`variables.key`,
//! `$v.key`), string, raw string, number, boolean and nil literals; `if` / `else if` /
//! `else`, `range` (with `$i, $v :=`, over maps in key order and lists) and `with`, each
//! with `end`; and Go's builtins `and`, `or`, `not`, `len`, `index`, `print`, `printf`,
//! `println`, `eq`, `ne`, `lt`, `le`, `gt`, `ge`, `html`, `js`, `urlquery`.
//! `define`, `template` and `block` are refused: a MetricTemplate is one template.

mod exec;
mod lex;
mod parse;
mod values;

use std::collections::BTreeMap;

use exec::*;
use lex::*;
use parse::*;
use values::*;

/// A value of the template language.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Go's nil (the data Flagger passes).
    Nil,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// A map with string keys (`variables`).
    Map(BTreeMap<String, Value>),
    /// A list.
    List(Vec<Value>),
}

/// A problem and the byte offset of the action it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Byte offset in the template text.
    pub offset: usize,
    /// What is wrong, in Go's words where Go has them.
    pub message: String,
}

type Res<T> = Result<T, Problem>;

/// The functions a template may call besides the builtins: Flagger's model.
pub type Functions = BTreeMap<String, Value>;

/// Renders `text` with `functions` (each a function without arguments returning its value).
pub fn render(text: &str, functions: &Functions) -> Res<String> {
    let nodes = parse(text)?;
    let mut out = String::new();
    let mut run = Run {
        functions,
        vars: vec![("$".into(), Value::Nil)],
        dot: Value::Nil,
    };
    run.nodes(&nodes, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Functions {
        let vars: BTreeMap<String, Value> = [
            ("percentile", "0.99"),
            ("gateway", "public-gateway"),
            ("empty", ""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), Value::Str(v.into())))
        .collect();
        [
            ("name", "podinfo"),
            ("namespace", "test"),
            ("target", "podinfo"),
            ("service", "podinfo"),
            ("ingress", "podinfo"),
            ("route", "podinfo"),
            ("interval", "1m"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), Value::Str(v.into())))
        .chain(std::iter::once(("variables".to_string(), Value::Map(vars))))
        .collect()
    }

    fn ok(text: &str) -> String {
        render(text, &model()).unwrap_or_else(|e| panic!("{text}: {e:?}"))
    }

    fn problem(text: &str) -> String {
        render(text, &model()).expect_err(text).message
    }

    #[test]
    fn the_models_functions_and_variables() {
        assert_eq!(
            ok(
                r#"sum(rate(x{namespace="{{ namespace }}",pod=~"{{ target }}-[0-9a-zA-Z]+"}[{{ interval }}]))"#
            ),
            r#"sum(rate(x{namespace="test",pod=~"podinfo-[0-9a-zA-Z]+"}[1m]))"#
        );
        assert_eq!(
            ok("histogram_quantile({{ variables.percentile }}, x)"),
            "histogram_quantile(0.99, x)"
        );
        assert_eq!(
            ok("{{name}}.{{namespace}}/{{service}}/{{ingress}}/{{route}}"),
            "podinfo.test/podinfo/podinfo/podinfo"
        );
        assert_eq!(ok("{{ index variables \"gateway\" }}"), "public-gateway");
    }

    #[test]
    fn control_structures_variables_and_pipelines() {
        assert_eq!(
            ok("{{ if variables.empty }}a{{ else if eq namespace \"test\" }}b{{ else }}c{{ end }}"),
            "b"
        );
        assert_eq!(
            ok("{{ if ne target \"podinfo\" }}x{{ else }}y{{ end }}"),
            "y"
        );
        assert_eq!(
            ok("{{ $ns := namespace }}{{ $ns }}-{{ $ns = \"prod\" }}{{ $ns }}"),
            "test-prod"
        );
        assert_eq!(
            ok("{{ with variables.gateway }}gw={{ . }}{{ end }}"),
            "gw=public-gateway"
        );
        assert_eq!(
            ok("{{ range $k, $v := variables }}{{ $k }}={{ $v }};{{ end }}"),
            "empty=;gateway=public-gateway;percentile=0.99;"
        );
        assert_eq!(
            ok("{{ target | printf \"%s-primary\" }}"),
            "podinfo-primary"
        );
        assert_eq!(
            ok("{{ printf \"%s.%s.svc:%d\" service namespace 9898 }}"),
            "podinfo.test.svc:9898"
        );
        assert_eq!(
            ok("{{ printf \"%.2f|%5s|%-3d|%q\" 1.5 \"ab\" 7 \"x\" }}"),
            "1.50|   ab|7  |\"x\""
        );
        assert_eq!(ok("{{ (printf \"%s\" target) | len }}"), "7");
        assert_eq!(
            ok("{{ and true namespace }} {{ or \"\" 0 interval }} {{ not false }}"),
            "test 1m true"
        );
        assert_eq!(
            ok("{{ if and (eq namespace \"test\") (gt 3 2) }}both{{ end }}"),
            "both"
        );
        assert_eq!(
            ok("{{ print 1 2 \"a\" 3 }} {{ urlquery \"a b&c\" }}"),
            "1 2a3 a+b%26c"
        );
    }

    #[test]
    fn trimming_comments_and_literals() {
        assert_eq!(ok("a  {{- \" b \" -}}  c"), "a b c");
        assert_eq!(
            ok("x {{/* a comment */}} y {{- /* trimmed */ -}} z"),
            "x  yz"
        );
        assert_eq!(ok("{{ `raw {{ }}` }}"), "raw {{ }}");
        assert_eq!(ok("{{ \"}}\" }}"), "}}");
        assert_eq!(
            ok("{{ 1.5 }} {{ 10 }} {{ true }} {{ 0x10 }}"),
            "1.5 10 true 16"
        );
    }

    #[test]
    fn errors_say_what_go_says() {
        assert_eq!(problem("{{ bogus }}"), "function \"bogus\" not defined");
        assert_eq!(
            problem("{{ variables.missing }}"),
            "map has no entry for key \"missing\""
        );
        assert_eq!(
            problem("{{ .Name }}"),
            "nil data; no entry for key \"Name\""
        );
        assert_eq!(problem("{{ target "), "unclosed action: missing }}");
        assert!(problem("{{ if true }}x").starts_with("unexpected EOF"));
        assert!(problem("{{ end }}").starts_with("unexpected {{end}}"));
        assert_eq!(problem("{{ $nope }}"), "undefined variable: $nope");
        assert_eq!(
            problem("{{ namespace 1 }}"),
            "wrong number of args for namespace: want 0 got 1"
        );
        assert!(problem("{{ define \"x\" }}{{ end }}").contains("not supported"));
        let at = render("ab {{ bogus }}", &model())
            .expect_err("offset")
            .offset;
        assert_eq!(at, 3, "the action's offset");
    }
}
