//! [`super::FusedOps`] for burn's Cube backend: each op allocates its outputs and launches the
//! kernels of [`super::kernels`].

use super::*;
use burn_cubecl::cubecl::{CubeCount, CubeDim};
use burn_cubecl::{CubeBackend, kernel::into_contiguous, tensor::CubeTensor};

fn empty(like: &CubeTensor, shape: Shape) -> CubeTensor {
    let handle = like.client.empty(shape.num_elements() * like.dtype.size());
    CubeTensor::new_contiguous(
        like.client.clone(),
        like.device.clone(),
        shape,
        handle,
        like.dtype,
    )
}

fn split(v: u64) -> (u32, u32) {
    (v as u32, (v >> 32) as u32)
}

/// A grid of `n` workgroups within the 65,535-per-dimension limit.
fn grid(n: u32) -> CubeCount {
    let x = n.clamp(1, 65_535);
    CubeCount::Static(x, n.div_ceil(x).max(1), 1)
}

impl FusedOps for CubeBackend {
    fn line_batch(
        anchor: FloatTensor<Self>,
        k0: u32,
        k1: u32,
        step: u64,
        batch: u32,
        x_low: f32,
        x_span: f32,
        true_w: f32,
        true_b: f32,
        noise: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let shape = Shape::from([batch as usize, 1]);
        let xs = empty(&anchor, shape.clone());
        let ys = empty(&anchor, shape);
        let pairs = batch / 2 + batch % 2;
        if pairs > 0 {
            let (s_lo, s_hi) = split(step);
            line_batch_kernel::launch(
                &anchor.client,
                grid(pairs.div_ceil(UNITS)),
                CubeDim::new_1d(UNITS),
                xs.clone().into_tensor_arg(),
                ys.clone().into_tensor_arg(),
                k0,
                k1,
                s_lo,
                s_hi,
                batch,
                x_low,
                x_span,
                true_w,
                true_b,
                noise,
            );
        }
        (xs, ys)
    }

    fn fused_chunk(
        state: FloatTensor<Self>,
        k0: u32,
        k1: u32,
        first_step: u64,
        updates_before: u64,
        steps: u32,
        batch: u32,
        units: u32,
        groups: u32,
        x_low: f32,
        x_span: f32,
        true_w: f32,
        true_b: f32,
        noise: f32,
        lr: f32,
        beta1: f32,
        beta2: f32,
        epsilon: f32,
    ) -> FloatTensor<Self> {
        let state_in = into_contiguous(state);
        let out = empty(&state_in, Shape::from([STATE_OUT_LEN]));
        let client = state_in.client.clone();
        if units > 0 {
            let (f_lo, f_hi) = split(first_step);
            let (u_lo, u_hi) = split(updates_before);
            chunk_kernel::launch(
                &client,
                CubeCount::Static(1, 1, 1),
                CubeDim::new_1d(units),
                state_in.into_tensor_arg(),
                out.clone().into_tensor_arg(),
                k0,
                k1,
                f_lo,
                f_hi,
                u_lo,
                u_hi,
                steps,
                batch,
                x_low,
                x_span,
                true_w,
                true_b,
                noise,
                lr,
                beta1,
                beta2,
                epsilon,
                units as usize,
            );
            return out;
        }
        // One dispatch per step, plus one that applies the last update; states and partials
        // alternate between two buffers (see `step_kernel`).
        let states = [out, empty(&state_in, Shape::from([STATE_OUT_LEN]))];
        let partials = [
            empty(&state_in, Shape::from([3 * groups as usize])),
            empty(&state_in, Shape::from([3 * groups as usize])),
        ];
        for j in 0..=u64::from(steps) {
            let (now, before) = ((j % 2) as usize, ((j + 1) % 2) as usize);
            let (s_lo, s_hi) = split(first_step.wrapping_add(j));
            let (t_lo, t_hi) = split(updates_before.wrapping_add(j));
            step_kernel::launch(
                &client,
                CubeCount::Static(groups, 1, 1),
                CubeDim::new_1d(UNITS),
                state_in.clone().into_tensor_arg(),
                states[before].clone().into_tensor_arg(),
                partials[before].clone().into_tensor_arg(),
                states[now].clone().into_tensor_arg(),
                partials[now].clone().into_tensor_arg(),
                u32::from(j == 0),
                u32::from(j < u64::from(steps)),
                groups,
                k0,
                k1,
                s_lo,
                s_hi,
                t_lo,
                t_hi,
                batch,
                x_low,
                x_span,
                true_w,
                true_b,
                noise,
                lr,
                beta1,
                beta2,
                epsilon,
                UNITS as usize,
            );
        }
        let [even, odd] = states;
        if steps.is_multiple_of(2) { even } else { odd }
    }

    fn dense_chunk(
        state: FloatTensor<Self>,
        layout: FloatTensor<Self>,
        data: FloatTensor<Self>,
        order: FloatTensor<Self>,
        scratch_len: u32,
        source: u32,
        layers: u32,
        d_in: u32,
        width_sum: u32,
        relu: u32,
        loss_kind: u32,
        huber: f32,
        l2: f32,
        k0: u32,
        k1: u32,
        first_step: u64,
        updates_before: u64,
        steps: u32,
        batch: u32,
        table_rows: u32,
        epoch_index: u32,
        x_low: f32,
        x_span: f32,
        true_w: f32,
        true_b: f32,
        noise: f32,
        lr: f32,
        beta1: f32,
        beta2: f32,
        epsilon: f32,
        units: u32,
        groups: u32,
    ) -> FloatTensor<Self> {
        let state_in = into_contiguous(state);
        let n = state_in.meta.shape.num_elements();
        let out = empty(&state_in, Shape::from([n + super::dense_kernel::TAIL]));
        let scratch = empty(&state_in, Shape::from([scratch_len as usize]));
        let (f_lo, f_hi) = split(first_step);
        let (u_lo, u_hi) = split(updates_before);
        let client = state_in.client.clone();
        let (layout, data, order) = (
            into_contiguous(layout),
            into_contiguous(data),
            into_contiguous(order),
        );
        let n_params = (n / 3) as u32;
        if groups > 0 {
            use super::dense_kernel::{
                SOURCE_TABLE, dense_adam_kernel, dense_grad_kernel, dense_state_copy_kernel,
            };
            dense_state_copy_kernel::launch(
                &client,
                grid((n + super::dense_kernel::TAIL).div_ceil(UNITS as usize) as u32),
                CubeDim::new_1d(UNITS),
                state_in.into_tensor_arg(),
                out.clone().into_tensor_arg(),
            );
            let partials = empty(
                &out,
                Shape::from([groups as usize * (n_params as usize + 1)]),
            );
            // Slices of an even length: the synthetic sources draw samples in pairs.
            let slice_len = batch.div_ceil(groups).next_multiple_of(2);
            let per_epoch = if source == SOURCE_TABLE {
                table_rows.div_ceil(batch).max(1)
            } else {
                1
            };
            for k in 0..steps {
                // The step's minibatch: the `i`-th of the `e`-th epoch in `order`.
                let (e, i) = ((epoch_index + k) / per_epoch, (epoch_index + k) % per_epoch);
                let start = i * batch;
                let order_at = e * table_rows + start;
                let rows = if source == SOURCE_TABLE {
                    table_rows.saturating_sub(start).min(batch)
                } else {
                    batch
                };
                let (s_lo, s_hi) = split(first_step.wrapping_add(u64::from(k)));
                let (t_lo, t_hi) = split(updates_before.wrapping_add(u64::from(k) + 1));
                dense_grad_kernel::launch(
                    &client,
                    CubeCount::Static(groups, 1, 1),
                    CubeDim::new_1d(units),
                    out.clone().into_tensor_arg(),
                    layout.clone().into_tensor_arg(),
                    data.clone().into_tensor_arg(),
                    order.clone().into_tensor_arg(),
                    scratch.clone().into_tensor_arg(),
                    partials.clone().into_tensor_arg(),
                    source,
                    layers,
                    d_in,
                    width_sum,
                    n_params,
                    relu,
                    loss_kind,
                    huber,
                    k0,
                    k1,
                    s_lo,
                    s_hi,
                    batch,
                    slice_len,
                    table_rows,
                    start,
                    order_at,
                    x_low,
                    x_span,
                    true_w,
                    true_b,
                    noise,
                    units as usize,
                );
                dense_adam_kernel::launch(
                    &client,
                    CubeCount::Static(n_params.div_ceil(units), 1, 1),
                    CubeDim::new_1d(units),
                    out.clone().into_tensor_arg(),
                    layout.clone().into_tensor_arg(),
                    partials.clone().into_tensor_arg(),
                    layers,
                    n_params,
                    groups,
                    rows,
                    l2,
                    t_lo,
                    t_hi,
                    lr,
                    beta1,
                    beta2,
                    epsilon,
                    units as usize,
                );
            }
            return out;
        }
        super::dense_kernel::dense_chunk_kernel::launch(
            &client,
            CubeCount::Static(1, 1, 1),
            CubeDim::new_1d(units),
            state_in.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            layout.into_tensor_arg(),
            data.into_tensor_arg(),
            order.into_tensor_arg(),
            scratch.into_tensor_arg(),
            empty(&out, Shape::from([n_params as usize])).into_tensor_arg(),
            source,
            layers,
            d_in,
            width_sum,
            n_params,
            relu,
            loss_kind,
            huber,
            l2,
            k0,
            k1,
            f_lo,
            f_hi,
            u_lo,
            u_hi,
            steps,
            batch,
            table_rows,
            epoch_index,
            x_low,
            x_span,
            true_w,
            true_b,
            noise,
            lr,
            beta1,
            beta2,
            epsilon,
            units as usize,
        );
        out
    }

    fn philox_words(
        anchor: FloatTensor<Self>,
        k0: u32,
        k1: u32,
        c0: u32,
        c1: u32,
        c2: u32,
        c3: u32,
    ) -> FloatTensor<Self> {
        let out = empty(&anchor, Shape::from([32usize]));
        philox_words_kernel::launch(
            &anchor.client,
            CubeCount::Static(1, 1, 1),
            CubeDim::new_1d(4),
            out.clone().into_tensor_arg(),
            k0,
            k1,
            c0,
            c1,
            c2,
            c3,
        );
        out
    }
}
