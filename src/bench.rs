//! `actlab bench`: training throughput of the article's network at batch 64,
//! on synthetic images (speed does not depend on the pixels).

use crate::activation::Activation;
use crate::engine::rng::{Purpose, Rng};
use crate::nn::adam::{Adam, AdamConfig};
use crate::nn::model::{DropoutKey, Model, IMAGE_LEN};
use anyhow::Result;
use std::time::Instant;

pub const BATCH: usize = 64;

/// Images per second of full training steps (forward, backward, Adam).
pub fn measure(act: Activation, steps: usize) -> f64 {
    let rng = Rng::new(1);
    let mut model = Model::new(act, BATCH);
    model.init_glorot(&rng);
    let mut adam = Adam::new(AdamConfig::default(), model.params.len());
    let mut px = vec![0f32; BATCH * IMAGE_LEN];
    rng.fill_uniform(Purpose::Synthetic, 0, &mut px);
    let images: Vec<u8> = px.iter().map(|v| (v * 255.0) as u8).collect();
    let labels: Vec<u8> = (0..BATCH).map(|i| (i % 10) as u8).collect();
    let mut step = |s: u64| {
        model.load_images(&images);
        model.loss_and_grads(BATCH, &labels, Some(DropoutKey { rng: &rng, step: s }));
        adam.step(&mut model.params, &model.grads);
    };
    for s in 0..3 {
        step(s);
    }
    let t = Instant::now();
    for s in 0..steps as u64 {
        step(3 + s);
    }
    (steps * BATCH) as f64 / t.elapsed().as_secs_f64()
}

pub fn run(acts: &[Activation], steps: usize) -> Result<()> {
    println!("training throughput, article CNN, batch {BATCH}, {} threads, {steps} steps", rayon::current_num_threads());
    println!("{:<20} {:>10} {:>12}", "activation", "images/s", "ms/step");
    for &act in acts {
        let ips = measure(act, steps.max(1));
        println!("{:<20} {:>10.0} {:>12.1}", act.name(), ips, BATCH as f64 / ips * 1e3);
    }
    Ok(())
}
