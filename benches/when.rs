//! `when` filters: a query parsed once (`flotilla::actors::query::Query::parse`) and evaluated
//! per doc (`Query::matches`), as a Flow node with `when` does to every doc of every request.
//!
//! `cargo bench --bench when`; throughput figures are docs evaluated per second. The 1,000 docs
//! (id, text of 6 words, tags `price` (float), `category`, `in_stock`, `discount` on about a
//! third of them) are built once, outside the timing; each iteration evaluates one query over
//! all of them. Cases:
//! - `matches/simple`: `{"tags__price": {"$gt": 50}}`.
//! - `matches/regex`: `{"text": {"$regex": "(?i)\\b(red|blue) (shoe|hat)s?\\b"}}`.
//! - `matches/compound`: `$and` of an `$or` (`$in` on `tags__category`, `$lt` on
//!   `tags__price`), a `$not` of `$exists` on `tags__discount`, and `tags__in_stock: true`.
//! - `parse/compound`: parsing and validating the compound query alone (no docs).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use flotilla::actors::query::Query;
use flotilla::{Doc, DocList};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

const DOCS: usize = 1_000;

const WORDS: &[&str] = &[
    "red", "blue", "green", "shoe", "shoes", "hat", "hats", "bag", "cheap", "new", "classic",
    "leather", "cotton", "summer", "winter", "sale",
];
const CATEGORIES: &[&str] = &["shoes", "hats", "bags", "shirts", "socks", "coats"];

fn docs(rng: &mut StdRng) -> DocList {
    (0..DOCS)
        .map(|i| {
            let text: Vec<&str> = (0..6)
                .map(|_| WORDS[rng.random_range(0..WORDS.len())])
                .collect();
            let mut d = Doc::with_id(format!("doc-{i}"))
                .with_text(text.join(" "))
                .with_tag("price", rng.random_range(0.0..100.0))
                .with_tag(
                    "category",
                    CATEGORIES[rng.random_range(0..CATEGORIES.len())],
                )
                .with_tag("in_stock", rng.random_bool(0.7));
            if rng.random_bool(0.3) {
                d = d.with_tag("discount", rng.random_range(5..50i64));
            }
            d
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(6);
    let docs = docs(&mut rng);
    let compound = json!({"$and": [
        {"$or": [
            {"tags__category": {"$in": ["shoes", "hats", "bags"]}},
            {"tags__price": {"$lt": 20}},
        ]},
        {"$not": {"tags__discount": {"$exists": true}}},
        {"tags__in_stock": true},
    ]});
    let cases = [
        ("simple", json!({"tags__price": {"$gt": 50}})),
        (
            "regex",
            json!({"text": {"$regex": "(?i)\\b(red|blue) (shoe|hat)s?\\b"}}),
        ),
        ("compound", compound.clone()),
    ];
    let queries: Vec<(&str, Query)> = cases
        .iter()
        .map(|(name, q)| (*name, Query::parse(q).expect("a valid query")))
        .collect();

    // Every query keeps some docs and drops others.
    for (name, q) in &queries {
        let kept = docs.iter().filter(|d| q.matches(d)).count();
        println!("when/{name}: keeps {kept} of {DOCS} docs");
        assert!(0 < kept && kept < DOCS, "{name} keeps {kept}");
    }

    let mut g = c.benchmark_group("when");
    g.sample_size(20);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(DOCS as u64));
    for (name, q) in &queries {
        g.bench_with_input(BenchmarkId::new("matches", name), q, |b, q| {
            b.iter(|| docs.iter().filter(|d| q.matches(d)).count())
        });
    }
    g.throughput(Throughput::Elements(1));
    g.bench_with_input(
        BenchmarkId::new("parse", "compound"),
        &compound,
        |b, compound| b.iter(|| Query::parse(black_box(compound)).expect("a valid query")),
    );
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
