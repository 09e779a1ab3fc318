//! Reading a Prometheus text page: samples by name and labels.

use std::collections::BTreeMap;

use anyhow::Context as _;

/// One sample line: `name{label="value",...} number`.
#[derive(Debug)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Every sample of one `/metrics` page.
#[derive(Debug, Default)]
pub struct Page {
    pub samples: Vec<Sample>,
}

impl Page {
    pub fn parse(text: &str) -> anyhow::Result<Page> {
        let mut samples = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            samples.push(parse_line(line).with_context(|| format!("bad sample line {line:?}"))?);
        }
        Ok(Page { samples })
    }

    /// Fetches and parses `url`.
    pub async fn fetch(http: &reqwest::Client, url: &str) -> anyhow::Result<Page> {
        let response = http.get(url).send().await?;
        anyhow::ensure!(
            response.status().is_success(),
            "{url} answered {}",
            response.status()
        );
        Page::parse(&response.text().await?)
    }

    /// The sum over every sample of `name` whose labels include all of `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }

    /// Whether some sample of `name` has all of `labels`.
    pub fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.matching(name, labels).next().is_some()
    }

    fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |sample| {
            sample.name == name
                && labels
                    .iter()
                    .all(|(k, v)| sample.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }
}

/// The sum of `name` with `labels` over several pages.
pub fn total(pages: &[&Page], name: &str, labels: &[(&str, &str)]) -> f64 {
    pages.iter().map(|page| page.sum(name, labels)).sum()
}

fn parse_line(line: &str) -> anyhow::Result<Sample> {
    let (head, value) = line.rsplit_once(' ').context("no value")?;
    let value: f64 = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse()?,
    };
    let Some((name, rest)) = head.split_once('{') else {
        return Ok(Sample {
            name: head.to_owned(),
            labels: BTreeMap::new(),
            value,
        });
    };
    let body = rest.strip_suffix('}').context("unclosed labels")?;
    let mut labels = BTreeMap::new();
    let mut chars = body.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        anyhow::ensure!(chars.next() == Some('"'), "label {key} not quoted");
        let mut val = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => val.push('\n'),
                    Some(other) => val.push(other),
                    None => anyhow::bail!("dangling escape"),
                },
                '"' => break,
                c => val.push(c),
            }
        }
        labels.insert(key.trim_start_matches(',').to_owned(), val);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

#[test]
fn parses_names_labels_and_values() {
    let page = Page::parse(
        "# TYPE x counter\nx_total{queue=\"jobs\",status=\"refused:a,b\"} 3\nx_total{queue=\"batches\"} 4\ny 1.5\n",
    )
    .expect("parses");
    assert_eq!(page.sum("x_total", &[]), 7.0);
    assert_eq!(page.sum("x_total", &[("status", "refused:a,b")]), 3.0);
    assert_eq!(page.sum("y", &[]), 1.5);
    assert!(!page.has("x_total", &[("queue", "dead")]));
}
