use preheat_usage::simulate::*;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let get = |name: &str, default: f64| -> f64 {
        args.iter().position(|a| a == name).map(|i| args[i + 1].parse().unwrap()).unwrap_or(default)
    };
    let g = GeneratorConfig {
        keys: get("--keys", 50000.0) as usize,
        days: get("--days", 14.0) as u32,
        requests_per_day: get("--rpd", 1_000_000.0) as u64,
        zipf: get("--zipf", 1.0),
        seasonal_share: get("--seasonal", 0.8),
        peak_width_hours: get("--width", 2.0),
        peak_jitter_hours: get("--jitter", 3.0),
        noise: get("--noise", 0.3),
        random_share: get("--random", 0.05),
        seed: get("--seed", 1.0) as u64,
        ..GeneratorConfig::default()
    };
    let t = std::time::Instant::now();
    let mut events = Vec::new();
    generate(&g, |e| { events.push(e.clone()); Ok(()) }).unwrap();
    eprintln!("generated {} in {:?}", events.len(), t.elapsed());
    let c = SimConfig {
        capacity: get("--capacity", 5000.0) as usize,
        ttl_ms: (get("--ttl", 60.0) * 60_000.0) as u64,
        budget: get("--budget", 500.0) as usize,
        interval_ms: (get("--interval", 60.0) * 60_000.0) as u64,
        min_benefit: get("--minb", 0.3),
        alpha: get("--alpha", 0.2),
        beta: get("--beta", 0.01),
        gamma: get("--gamma", 0.3),
        ..SimConfig::default()
    };
    let t = std::time::Instant::now();
    let r = simulate(events.into_iter().map(Ok), &c).unwrap();
    eprintln!("simulated in {:?}", t.elapsed());
    for s in &r.strategies {
        println!("{:<11} {:>10} {:>10} {:.4} {:>8} {:>8}", s.strategy.name(), s.requests, s.hits, s.hit_rate, s.keys_warmed, s.warms_used);
    }
    println!("share {:?}", r.predictive_share_of_oracle_uplift);
}
