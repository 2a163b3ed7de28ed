//! The driver of the pipeline ([`compile`]) and the generation of the struct and its impls
//! ([`generate`]) from the emitted function bodies.

use crate::KRATE;
use std::collections::HashMap;

use egg::Symbol;
use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use crate::check::Net;
use crate::driver::Compiled;
use crate::emit::{scalar_lit, scalar_type, Dest, Emitter};
use crate::emit_lanes::{LaneDest, LaneEmitter};
use crate::hoist::Split;
use crate::ir::{bias_symbol, sample_symbol, seed_symbol, target_symbol, weight_symbol, Shape};
use crate::simplify::Program;
use symnet_runtime::catalog::Init;
use symnet_runtime::Targets;

/// Everything the pipeline produced for one network.
/// The generated items for `net`.
pub fn generate(net: &Net, c: &Compiled) -> TokenStream {
    let ident = &net.ident;
    let vis = &net.vis;
    let attrs = &net.attrs;
    let cfgs = &net.cfgs;
    let struct_token = &net.struct_token;
    let ty = scalar_type(net.scalar);
    let n_in = net.inputs;
    let n_out = net.outputs();
    let n_params = net.params();
    let n_latent = net.fan_in(net.layers.len() - 1);

    let names: Vec<_> = net.layers.iter().map(|l| &l.name).collect();
    let fields = net.layers.iter().enumerate().map(|(k, l)| {
        let name = &l.name;
        let (i, o) = (net.fan_in(k), l.width);
        let doc = format!(
            "Layer `{name}`: `dense({o}) -> {}`, {i} inputs, {} parameters.",
            l.activation.name(),
            o * (i + 1)
        );
        quote!(#[doc = #doc] pub #name: #KRATE::Dense<#ty, #i, #o>)
    });
    let inits = net.layers.iter().enumerate().map(|(k, l)| {
        let name = &l.name;
        let k = k as u64;
        let kind = match l.activation.init() {
            Init::Glorot => quote!(Glorot),
            Init::He => quote!(He),
            Init::LeCun => quote!(LeCun),
        };
        quote!(#KRATE::__private::init_dense(&mut net.#name, seed, #k, #KRATE::__private::InitKind::#kind);)
    });
    let tensors = net.layers.iter().enumerate().flat_map(|(k, l)| {
        let (i, o) = (net.fan_in(k), l.width);
        let w = format!("{}.w", l.name);
        let b = format!("{}.b", l.name);
        [quote!((#w, &[#o, #i])), quote!((#b, &[#o]))]
    });

    // Paths of the symbols inside the generated methods.
    let mut paths: HashMap<Symbol, TokenStream> = HashMap::new();
    // `x` and `y` are references to arrays in every generated function.
    paths.insert(sample_symbol(), quote!((*x)));
    paths.insert(target_symbol(), quote!((*y)));
    paths.insert(seed_symbol(), quote!(seed));
    for l in &net.layers {
        let name = &l.name;
        let s = l.name.to_string();
        paths.insert(weight_symbol(&s), quote!(self.#name.w));
        paths.insert(bias_symbol(&s), quote!(self.#name.b));
    }
    let out = format_ident!("__out");
    let body = |p: &Program| Emitter::new(p, net.scalar, &paths).body(&[Dest::Local(out.clone())]);
    let forward_body = body(&c.forward);
    let latent_body = body(&c.latent);
    let loss_body = body(&c.loss);
    let mut dests = vec![Dest::Local(out.clone())];
    for (l, (w, b)) in net.layers.iter().zip(&c.grad_roots) {
        let name = &l.name;
        if w.is_some() {
            dests.push(Dest::AddInto(quote!(grad.#name.w)));
        }
        if b.is_some() {
            dests.push(Dest::AddInto(quote!(grad.#name.b)));
        }
    }
    let backward_body = Emitter::new(&c.backward, net.scalar, &paths).body(&dests);
    let one = scalar_lit(net.scalar, 1.0);

    // Weight penalties: their value, and their gradients scaled by `seed`, each in a block of
    // its own (the emitter's locals do not meet the loss's). Empty without penalties.
    let pen = format_ident!("__penalty");
    let (penalty_value, penalty_backward) = match &c.penalty {
        None => (TokenStream::new(), TokenStream::new()),
        Some(p) => {
            let value =
                Emitter::new(&p.value, net.scalar, &paths).body(&[Dest::Local(pen.clone())]);
            let mut dests = vec![Dest::Local(pen.clone())];
            for (l, g) in net.layers.iter().zip(&p.grad_roots) {
                if g.is_some() {
                    let name = &l.name;
                    dests.push(Dest::AddInto(quote!(grad.#name.w)));
                }
            }
            let backward = Emitter::new(&p.backward, net.scalar, &paths).body(&dests);
            (quote!(+ { #value #pen }), quote!(+ { #backward #pen }))
        }
    };
    // In `backward_sum`, once for the batch: `n scale` times the penalty's gradient.
    let penalty_batch = if c.penalty.is_some() {
        quote! {
            {
                let seed = scale * xs.len() as #ty;
                total += xs.len() as #ty * (0.0 #penalty_backward);
            }
        }
    } else {
        TokenStream::new()
    };

    // Batch variants: parameter-only values computed once, then a loop over the samples.
    // Paths for the per-sample part of a split: parameters read in place, hoisted values
    // from the locals `h<k>` that `hoisted_body` binds.
    let hoisted_paths = |sp: &Split| {
        let mut p = paths.clone();
        for (k, f) in sp.frontier.iter().enumerate() {
            let path = match f.param {
                Some(s) => paths[&s].clone(),
                None => {
                    let h = format_ident!("h{}", k);
                    quote!(#h)
                }
            };
            p.insert(f.symbol, path);
        }
        p
    };
    let hoisted_body = |sp: &Split| {
        let dests: Vec<Dest> = sp
            .frontier
            .iter()
            .enumerate()
            .filter(|(_, f)| f.root.is_some())
            .map(|(k, _)| Dest::Local(format_ident!("h{}", k)))
            .collect();
        Emitter::new(&sp.hoisted, net.scalar, &paths).body(&dests)
    };
    // Batch loops: hoisted values once, then chunks of LANES samples with the samples across
    // SIMD lanes (see `emit_lanes`), then the remaining samples one by one.
    let lanes = crate::emit_lanes::lanes(net.scalar);
    let x_setup = quote! {
        let base = chunk * #lanes;
        let mut xl = [[0.0 as #ty; #lanes]; #n_in];
        for s in 0..#lanes {
            for k in 0..#n_in {
                xl[k][s] = xs[base + s][k];
            }
        }
    };
    let y_setup = quote! {
        let mut yl = [[0.0 as #ty; #lanes]; #n_out];
        for s in 0..#lanes {
            for k in 0..#n_out {
                yl[k][s] = ys[base + s][k];
            }
        }
    };
    let batched =
        |sp: &Split, lane_dests: &[LaneDest], dests: &[Dest], each: TokenStream, has_y: bool| {
            let chunk_setup = if has_y {
                quote!(#x_setup #y_setup)
            } else {
                x_setup.clone()
            };
            let bind = if has_y {
                quote!(let (x, y) = (&xs[i], &ys[i]);)
            } else {
                quote!(let x = &xs[i];)
            };
            let pre = hoisted_body(sp);
            let p = hoisted_paths(sp);
            let lane_body = LaneEmitter::new(&sp.sample, net.scalar, &p).body(lane_dests);
            let body = Emitter::new(&sp.sample, net.scalar, &p).body(dests);
            quote! {
                #pre
                let chunks = xs.len() / #lanes;
                for chunk in 0..chunks {
                    #chunk_setup
                    #lane_body
                }
                for i in chunks * #lanes..xs.len() {
                    #bind
                    #body
                    #each
                }
            }
        };
    let loss_batch_loop = batched(
        &c.loss_split,
        &[LaneDest::AddInto(quote!(total))],
        &[Dest::Local(out.clone())],
        quote!(total += #out;),
        true,
    );
    let mut lane_dests = vec![LaneDest::AddInto(quote!(total))];
    for (l, (w, b)) in net.layers.iter().zip(&c.grad_roots) {
        let name = &l.name;
        if w.is_some() {
            lane_dests.push(LaneDest::AddInto(quote!(grad.#name.w)));
        }
        if b.is_some() {
            lane_dests.push(LaneDest::AddInto(quote!(grad.#name.b)));
        }
    }
    let backward_batch_loop = {
        let inner = batched(
            &c.backward_split,
            &lane_dests,
            &dests,
            quote!(total += #out;),
            true,
        );
        quote!(let seed = scale; #inner)
    };
    let forward_batch_loop = batched(
        &c.forward_split,
        &[LaneDest::Rows(quote!(out))],
        &[Dest::Local(out.clone())],
        quote!(out[i] = #out;),
        false,
    );

    // The prepared (inference) struct: every parameter-only value of the forward pass.
    let prepared = format_ident!("{}Prepared", ident);
    let fs = &c.forward_split;
    let field = |k: usize| format_ident!("p{}", k);
    let prepared_fields = fs.frontier.iter().enumerate().map(|(k, f)| {
        let name = field(k);
        let t = array_type(&ty, f.shape);
        quote!(#name: #t)
    });
    let prepared_inits = fs.frontier.iter().enumerate().map(|(k, f)| {
        let name = field(k);
        match f.param {
            Some(s) => {
                let p = &paths[&s];
                quote!(#name: #p)
            }
            None => {
                let h = format_ident!("h{}", k);
                quote!(#name: #h)
            }
        }
    });
    let prepare_pre = hoisted_body(fs);
    let prepared_paths = {
        let mut p = paths.clone();
        for (k, f) in fs.frontier.iter().enumerate() {
            let name = field(k);
            p.insert(f.symbol, quote!(self.#name));
        }
        p
    };
    let prepared_forward =
        Emitter::new(&fs.sample, net.scalar, &prepared_paths).body(&[Dest::Local(out.clone())]);
    let prepared_doc = format!(
        "The inference form of [`{ident}`], made by [`{ident}::prepare`]: every value that \
         depends on parameters only is computed once, and [`{prepared}::forward`] does only \
         per-sample work ({} scalars of parameters read per sample, of {n_params} declared).",
        fs.effective_params()
    );

    let explanation = crate::explain::explanation(net, c);
    let effective = c.forward_split.effective_params();
    let struct_doc = format!(
        "\n\nGenerated by `symnet::network!`: {n_in} inputs, {n_out} outputs, {n_params} parameters, loss `{}`.\n\n# What the compiler made of it\n\n```text\n{explanation}```",
        net.loss.name()
    );

    // A note when layers collapse: stable proc macros cannot emit warnings, so the note is the
    // deprecation warning of a unit struct used at the first collapsed layer's name.
    let mut notes = TokenStream::new();
    if !net.allow_domain {
        for (span, note) in &c.domain_notes {
            let marker = format_ident!("unproven_domain", span = *span);
            notes.extend(quote::quote_spanned! {*span=>
                #(#cfgs)*
                const _: () = {
                    #[deprecated(note = #note)]
                    #[allow(non_camel_case_types)]
                    struct #marker;
                    let _ = #marker;
                };
            });
        }
    }
    if !net.allow_collapse {
        for (s, e) in crate::explain::collapsed_runs(net, c) {
            let names: Vec<String> = net.layers[s..=e]
                .iter()
                .map(|l| format!("`{}`", l.name))
                .collect();
            let note = format!(
                "layers {} are all linear and collapse into one affine map: {} declared parameters, {} effective. Add `#[symnet(allow_collapse)]` to the declaration to silence this note",
                names.join(", "),
                n_params,
                c.forward_split.effective_params()
            );
            let span = net.layers[s].name.span();
            let marker = format_ident!("linear_layers_collapse", span = span);
            notes.extend(quote::quote_spanned! {span=>
                #(#cfgs)*
                const _: () = {
                    #[deprecated(note = #note)]
                    #[allow(non_camel_case_types)]
                    struct #marker;
                    let _ = #marker;
                };
            });
        }
    }

    // The struct item's own tokens (attributes, braces) carry the user's span, so that the
    // item's span (where rustc says "not found for this struct" and suggests a derive) is the
    // declaration rather than the whole macro call.
    let struct_item = quote::quote_spanned! {struct_token.span=>
        #(#cfgs)*
        #(#attrs)*
        #[doc = #struct_doc]
        #[repr(C)]
        #vis #struct_token #ident {
            #(#fields,)*
        }
    };
    let dense_zeros = quote!(#KRATE::Dense::zeros());
    let predict_class = predict_class(net);
    // What the loss needs of its targets, checked by the trainers before they use a data set.
    let targets = match net.loss.targets() {
        Targets::Probabilities => quote!(Probabilities),
        Targets::Distribution => quote!(Distribution),
        Targets::Real => quote!(Real),
    };
    quote! {
        #struct_item

        #(#cfgs)*
        #[doc = #prepared_doc]
        #[derive(Clone, Debug)]
        #[allow(dead_code)]
        #vis struct #prepared {
            #(#prepared_fields,)*
        }

        #notes

        #(#cfgs)*
        const _: () = {
            // The flat parameter view relies on the struct being exactly PARAMS scalars.
            ::core::assert!(
                ::core::mem::size_of::<#ident>() == #n_params * ::core::mem::size_of::<#ty>()
            );

            #[automatically_derived]
            #[allow(clippy::all, clippy::pedantic, clippy::nursery, unused_parens, unused_mut, unused_variables, non_snake_case)]
            impl #ident {
                /// The input width.
                pub const INPUTS: usize = #n_in;
                /// The output width.
                pub const OUTPUTS: usize = #n_out;
                /// The number of parameters: `k1 (n + 1) + k2 (k1 + 1) + ...`.
                pub const PARAMS: usize = #n_params;
                /// The number of parameter values the prepared forward pass reads per sample: less
                /// than `PARAMS` when layers collapse (a stack of linear layers is one affine map).
                pub const EFFECTIVE_PARAMS: usize = #effective;
                /// What the compiler made of the declaration: the simplified formulas, the
                /// gradients, the rewrites that fired, parameter counts and FLOPs (the same text
                /// as the struct's documentation).
                pub const EXPLANATION: &'static str = #explanation;

                /// Every weight and bias zero; also the neutral gradient accumulator.
                pub const fn zeros() -> Self {
                    Self { #(#names: #dense_zeros,)* }
                }

                /// Random weights, deterministic for `seed`: Glorot uniform for sigmoid, tanh,
                /// identity, softplus and softmax layers, He uniform for relu-like ones; zero
                /// biases.
                pub fn init(seed: u64) -> Self {
                    let mut net = Self::zeros();
                    #(#inits)*
                    net
                }

                /// The network's output for one sample.
                #[inline]
                pub fn forward(&self, x: &[#ty; #n_in]) -> [#ty; #n_out] {
                    #forward_body
                    #out
                }

                #predict_class

                /// The latent representation of one sample: the input of the last layer.
                #[inline]
                pub fn latent(&self, x: &[#ty; #n_in]) -> [#ty; #n_latent] {
                    #latent_body
                    #out
                }

                /// The loss of one sample.
                #[inline]
                pub fn loss(&self, x: &[#ty; #n_in], y: &[#ty; #n_out]) -> #ty {
                    #loss_body
                    #out #penalty_value
                }

                /// Adds the gradient of the loss of one sample into `grad` and returns the loss.
                #[inline]
                pub fn backward(&self, x: &[#ty; #n_in], y: &[#ty; #n_out], grad: &mut Self) -> #ty {
                    self.backward_scaled(x, y, #one, grad)
                }

                /// Adds `seed` times the gradient of the loss of one sample into `grad` and
                /// returns the (unscaled) loss.
                #[inline]
                pub fn backward_scaled(&self, x: &[#ty; #n_in], y: &[#ty; #n_out], seed: #ty, grad: &mut Self) -> #ty {
                    #backward_body
                    #out #penalty_backward
                }

                /// The outputs of a batch of samples.
                ///
                /// # Panics
                /// If `xs` and `out` have different lengths.
                #[track_caller]
                pub fn forward_batch(&self, xs: &[[#ty; #n_in]], out: &mut [[#ty; #n_out]]) {
                    ::core::assert_eq!(xs.len(), out.len(), "forward_batch: {} inputs but {} output rows", xs.len(), out.len());
                    #forward_batch_loop
                }

                /// The mean loss of a batch.
                ///
                /// # Panics
                /// If `xs` and `ys` have different lengths or are empty.
                #[track_caller]
                pub fn loss_batch(&self, xs: &[[#ty; #n_in]], ys: &[[#ty; #n_out]]) -> #ty {
                    ::core::assert_eq!(xs.len(), ys.len(), "loss_batch: {} inputs but {} targets", xs.len(), ys.len());
                    ::core::assert!(!xs.is_empty(), "loss_batch: empty batch");
                    let mut total: #ty = 0.0;
                    #loss_batch_loop
                    total / xs.len() as #ty #penalty_value
                }

                /// Adds the mean gradient of a batch into `grad` and returns the mean loss.
                ///
                /// # Panics
                /// If `xs` and `ys` have different lengths or are empty.
                #[track_caller]
                pub fn backward_batch(&self, xs: &[[#ty; #n_in]], ys: &[[#ty; #n_out]], grad: &mut Self) -> #ty {
                    ::core::assert!(!xs.is_empty(), "backward_batch: empty batch");
                    let scale = 1.0 / xs.len() as #ty;
                    self.backward_sum(xs, ys, scale, grad) * scale
                }

                /// Adds `scale` times the sum of the samples' gradients into `grad` and returns
                /// the sum of their losses. Values that depend on the parameters only are
                /// computed once for the batch.
                ///
                /// # Panics
                /// If `xs` and `ys` have different lengths.
                #[track_caller]
                pub fn backward_sum(&self, xs: &[[#ty; #n_in]], ys: &[[#ty; #n_out]], scale: #ty, grad: &mut Self) -> #ty {
                    ::core::assert_eq!(xs.len(), ys.len(), "backward_sum: {} inputs but {} targets", xs.len(), ys.len());
                    let mut total: #ty = 0.0;
                    #backward_batch_loop
                    #penalty_batch
                    total
                }

                /// Computes every value that depends on the parameters only (for a stack of
                /// linear layers, the collapsed `W'` and `b'`) and returns the inference form,
                /// whose `forward` does only per-sample work. Call it again after the
                /// parameters change.
                pub fn prepare(&self) -> #prepared {
                    #prepare_pre
                    #prepared { #(#prepared_inits,)* }
                }

                /// The parameters as one flat slice: layer after layer, weights row by row,
                /// then biases.
                #[inline]
                pub fn params(&self) -> &[#ty] {
                    #KRATE::__private::Flat::flat(self)
                }

                /// The parameters as one flat mutable slice.
                #[inline]
                pub fn params_mut(&mut self) -> &mut [#ty] {
                    #KRATE::__private::Flat::flat_mut(self)
                }
            }

            #[automatically_derived]
            #[allow(clippy::all, clippy::pedantic, clippy::nursery, unused_parens, unused_mut, unused_variables, non_snake_case, dead_code)]
            impl #prepared {
                /// The network's output for one sample (equal to the network's own `forward`
                /// up to float rounding).
                #[inline]
                pub fn forward(&self, x: &[#ty; #n_in]) -> [#ty; #n_out] {
                    #prepared_forward
                    #out
                }

                #predict_class

                /// The outputs of a batch of samples.
                ///
                /// # Panics
                /// If `xs` and `out` have different lengths.
                #[track_caller]
                pub fn forward_batch(&self, xs: &[[#ty; #n_in]], out: &mut [[#ty; #n_out]]) {
                    ::core::assert_eq!(xs.len(), out.len(), "forward_batch: {} inputs but {} output rows", xs.len(), out.len());
                    for i in 0..xs.len() {
                        out[i] = self.forward(&xs[i]);
                    }
                }
            }

            #[automatically_derived]
            impl ::core::default::Default for #ident {
                /// Every weight and bias zero, as [`Self::zeros`].
                #[inline]
                fn default() -> Self {
                    Self::zeros()
                }
            }

            // SAFETY: the struct is #[repr(C)] and made only of `Dense<T, _, _>` fields, which
            // are #[repr(C)] arrays of T; its size is asserted above to be PARAMS values of T.
            unsafe impl #KRATE::__private::Flat<#ty> for #ident {
                const N: usize = #n_params;
            }

            #[automatically_derived]
            impl #KRATE::Network for #ident {
                type Scalar = #ty;
                const INPUTS: usize = #n_in;
                const OUTPUTS: usize = #n_out;
                const PARAMS: usize = #n_params;
                const TARGETS: #KRATE::Targets = #KRATE::Targets::#targets;
                fn zeros() -> Self {
                    #ident::zeros()
                }
                fn init(seed: u64) -> Self {
                    #ident::init(seed)
                }
                fn params(&self) -> &[#ty] {
                    #ident::params(self)
                }
                fn params_mut(&mut self) -> &mut [#ty] {
                    #ident::params_mut(self)
                }
                fn tensors() -> &'static [(&'static str, &'static [usize])] {
                    &[#(#tensors),*]
                }
                #[track_caller]
                fn forward_slice(&self, x: &[#ty], out: &mut [#ty]) {
                    let x = #KRATE::__private::array::<#ty, #n_in>(x, "forward_slice input");
                    let out = #KRATE::__private::array_mut::<#ty, #n_out>(out, "forward_slice output");
                    *out = self.forward(x);
                }
                #[track_caller]
                fn loss_slice(&self, x: &[#ty], y: &[#ty]) -> #ty {
                    let x = #KRATE::__private::array::<#ty, #n_in>(x, "loss_slice input");
                    let y = #KRATE::__private::array::<#ty, #n_out>(y, "loss_slice target");
                    self.loss(x, y)
                }
                #[track_caller]
                fn backward_slice(&self, x: &[#ty], y: &[#ty], scale: #ty, grad: &mut Self) -> #ty {
                    let x = #KRATE::__private::array::<#ty, #n_in>(x, "backward_slice input");
                    let y = #KRATE::__private::array::<#ty, #n_out>(y, "backward_slice target");
                    self.backward_scaled(x, y, scale, grad)
                }
                #[track_caller]
                fn backward_rows(&self, xs: &[#ty], ys: &[#ty], scale: #ty, grad: &mut Self) -> #ty {
                    let xs = #KRATE::__private::rows::<#ty, #n_in>(xs, "backward_rows inputs");
                    let ys = #KRATE::__private::rows::<#ty, #n_out>(ys, "backward_rows targets");
                    self.backward_sum(xs, ys, scale, grad)
                }
            }
        };
    }
}

/// `predict_class` for a classifier (a softmax output, or sigmoid outputs); nothing for a
/// regressor. The same text serves the network and its prepared form, which both have
/// `forward`.
fn predict_class(net: &Net) -> TokenStream {
    let Some(out) = net.layers.last() else {
        return TokenStream::new();
    };
    let ty = scalar_type(net.scalar);
    let n_in = net.inputs;
    let act = &out.activation;
    match () {
        _ if act.is("sigmoid") && out.width == 1 => {
            let half = scalar_lit(net.scalar, 0.5);
            quote! {
                /// The predicted class of one sample, `0` or `1`: whether the sigmoid output is
                /// at least `0.5` (a NaN output gives `0`).
                #[inline]
                pub fn predict_class(&self, x: &[#ty; #n_in]) -> usize {
                    (self.forward(x)[0] >= #half) as usize
                }
            }
        }
        _ if act.is("sigmoid") || act.is("softmax") => quote! {
            /// The predicted class of one sample: the index of the largest output (the first
            /// on ties; a NaN never wins).
            #[inline]
            pub fn predict_class(&self, x: &[#ty; #n_in]) -> usize {
                #KRATE::argmax(&self.forward(x))
            }
        },
        _ => TokenStream::new(),
    }
}

/// The Rust type of a tensor of `shape`.
fn array_type(ty: &TokenStream, shape: Shape) -> TokenStream {
    match shape {
        Shape::Scalar => quote!(#ty),
        Shape::Vector(n) => quote!([#ty; #n]),
        Shape::Matrix(r, c) => quote!([[#ty; #c]; #r]),
    }
}
