//! The generation of the struct and its impls ([`generate`]) from the programs the driver
//! compiled: one builder per generated item or group of methods, over a shared `Items` context.

use crate::KRATE;
use std::collections::HashMap;

use egg::Symbol;
use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote};

use crate::check::Net;
use crate::driver::Compiled;
use crate::emit::{scalar_lit, scalar_type, Dest, Emitter};
use crate::emit_lanes::{chunk_rows, transpose, LaneDest, LaneEmitter};
use crate::hoist::Split;
use crate::ir::{bias_symbol, sample_symbol, seed_symbol, target_symbol, weight_symbol, Shape};
use crate::simplify::Program;
use symnet_runtime::catalog::Init;
use symnet_runtime::Targets;

/// The generated items for `net`: the struct, its prepared (inference) form, the notes, and
/// in one `const _` block the size check and every impl.
pub fn generate(net: &Net, c: &Compiled) -> TokenStream {
    let items = Items::new(net, c);
    let cfgs = &net.cfgs;
    let struct_item = items.struct_item();
    let prepared_struct_item = items.prepared_struct_item();
    let notes = items.notes();
    let size_check = items.size_check();
    let inherent_impl = items.inherent_impl();
    let prepared_impl = items.prepared_impl();
    let default_impl = items.default_impl();
    let flat_impl = items.flat_impl();
    let network_impl = items.network_impl();
    quote! {
        #struct_item

        #prepared_struct_item

        #notes

        #(#cfgs)*
        const _: () = {
            #size_check

            #inherent_impl

            #prepared_impl

            #default_impl

            #flat_impl

            #network_impl
        };
    }
}

/// What the builders share: the declaration, its compiled programs, and the values derived
/// from them once.
struct Items<'a> {
    net: &'a Net,
    c: &'a Compiled,
    /// The scalar type, `f32` or `f64`.
    ty: TokenStream,
    n_in: usize,
    n_out: usize,
    n_params: usize,
    /// The name of the prepared struct, `<Name>Prepared`.
    prepared: Ident,
    /// Paths of the symbols inside the generated methods.
    paths: HashMap<Symbol, TokenStream>,
    /// The local that an emitted body binds its (first) result to.
    out: Ident,
    /// The explanation: the struct's documentation and its `EXPLANATION`.
    explanation: String,
}

/// The weight penalties' terms, added after the loss's local in the generated methods: their
/// value, and their gradients scaled by `seed`, each in a block of its own (the emitter's locals
/// do not meet the loss's). Empty without penalties.
struct PenaltyTerms {
    /// `+ { .. penalty }`: the penalty's value.
    value: TokenStream,
    /// `+ { .. penalty }`: the value, its gradients added into `grad`.
    backward: TokenStream,
}

impl<'a> Items<'a> {
    fn new(net: &'a Net, c: &'a Compiled) -> Self {
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
        Items {
            net,
            c,
            ty: scalar_type(net.scalar),
            n_in: net.inputs,
            n_out: net.outputs(),
            n_params: net.params(),
            prepared: format_ident!("{}Prepared", net.ident),
            paths,
            out: format_ident!("__out"),
            explanation: crate::explain::explanation(net, c),
        }
    }

    /// The body computing `p`'s single root into the local `out`.
    fn body(&self, p: &Program) -> TokenStream {
        Emitter::new(p, self.net.scalar, &self.paths).body(&[Dest::Local(self.out.clone())])
    }

    /// The places the loss's gradients are added into: `grad.<layer>.w` and `.b`, in the order
    /// of `backward`'s roots after the loss.
    fn grad_places(&self) -> Vec<TokenStream> {
        let mut places = Vec::new();
        for (l, (w, b)) in self.net.layers.iter().zip(&self.c.grad_roots) {
            let name = &l.name;
            if w.is_some() {
                places.push(quote!(grad.#name.w));
            }
            if b.is_some() {
                places.push(quote!(grad.#name.b));
            }
        }
        places
    }

    /// Destinations of the per-sample backward programs: the loss, then the gradients.
    fn backward_dests(&self) -> Vec<Dest> {
        let mut dests = vec![Dest::Local(self.out.clone())];
        dests.extend(self.grad_places().into_iter().map(Dest::AddInto));
        dests
    }

    /// The struct item, documented with the explanation.
    fn struct_item(&self) -> TokenStream {
        let net = self.net;
        let (ident, vis, attrs, cfgs) = (&net.ident, &net.vis, &net.attrs, &net.cfgs);
        let struct_token = &net.struct_token;
        let ty = &self.ty;
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
        let (n_in, n_out, n_params) = (self.n_in, self.n_out, self.n_params);
        let explanation = &self.explanation;
        let struct_doc = format!(
            "\n\nGenerated by `symnet::network!`: {n_in} inputs, {n_out} outputs, {n_params} parameters, loss `{}`.\n\n# What the compiler made of it\n\n```text\n{explanation}```",
            net.loss.name()
        );
        // The struct item's own tokens (attributes, braces) carry the user's span, so that the
        // item's span (where rustc says "not found for this struct" and suggests a derive) is
        // the declaration rather than the whole macro call.
        quote::quote_spanned! {struct_token.span=>
            #(#cfgs)*
            #(#attrs)*
            #[doc = #struct_doc]
            #[repr(C)]
            #vis #struct_token #ident {
                #(#fields,)*
            }
        }
    }

    /// The prepared (inference) struct: every parameter-only value of the forward pass, one
    /// field `p<k>` per value of the forward split's frontier.
    fn prepared_struct_item(&self) -> TokenStream {
        let (ident, vis, cfgs) = (&self.net.ident, &self.net.vis, &self.net.cfgs);
        let prepared = &self.prepared;
        let fs = &self.c.prepared_split;
        let fields = fs.frontier.iter().enumerate().map(|(k, f)| {
            let name = prepared_field(k);
            let t = array_type(&self.ty, f.stored_shape());
            quote!(#name: #t)
        });
        let doc = format!(
            "The inference form of [`{ident}`], made by [`{ident}::prepare`]: every value that \
             depends on parameters only is computed once, and [`{prepared}::forward`] does only \
             per-sample work ({} scalars of parameters read per sample, of {} declared).",
            fs.effective_params(),
            self.n_params
        );
        quote! {
            #(#cfgs)*
            #[doc = #doc]
            #[derive(Clone, Debug)]
            #[allow(dead_code)]
            #vis struct #prepared {
                #(#fields,)*
            }
        }
    }

    /// The notes: stable proc macros cannot emit warnings, so each note is the deprecation
    /// warning of a unit struct used at the user's token.
    fn notes(&self) -> TokenStream {
        let mut notes = self.domain_notes();
        notes.extend(self.collapse_notes());
        notes
    }

    /// A note at each `ln`, `sqrt` or division of a formula whose argument the range analysis
    /// cannot prove safe, unless `#[symnet(allow_domain)]`.
    fn domain_notes(&self) -> TokenStream {
        let mut notes = TokenStream::new();
        if !self.net.allow_domain {
            for (span, note) in &self.c.domain_notes {
                notes.extend(self.note(*span, "unproven_domain", note));
            }
        }
        notes
    }

    /// A note at the first layer of each run of linear layers that collapses into one affine
    /// map, unless `#[symnet(allow_collapse)]`.
    fn collapse_notes(&self) -> TokenStream {
        let net = self.net;
        let mut notes = TokenStream::new();
        if !net.allow_collapse {
            for (s, e) in crate::explain::collapsed_runs(net, self.c) {
                let names: Vec<String> = net.layers[s..=e]
                    .iter()
                    .map(|l| format!("`{}`", l.name))
                    .collect();
                let note = format!(
                    "layers {} are all linear and collapse into one affine map: {} declared parameters, {} effective. Add `#[symnet(allow_collapse)]` to the declaration to silence this note",
                    names.join(", "),
                    self.n_params,
                    self.c.prepared_split.effective_params()
                );
                notes.extend(self.note(net.layers[s].name.span(), "linear_layers_collapse", &note));
            }
        }
        notes
    }

    /// One note: a deprecated unit struct named `marker`, used at `span`.
    fn note(&self, span: Span, marker: &str, note: &str) -> TokenStream {
        let cfgs = &self.net.cfgs;
        let marker = format_ident!("{}", marker, span = span);
        quote::quote_spanned! {span=>
            #(#cfgs)*
            const _: () = {
                #[deprecated(note = #note)]
                #[allow(non_camel_case_types)]
                struct #marker;
                let _ = #marker;
            };
        }
    }

    /// The assertion that the struct is exactly `PARAMS` scalars.
    fn size_check(&self) -> TokenStream {
        let (ident, ty, n_params) = (&self.net.ident, &self.ty, self.n_params);
        quote! {
            // The flat parameter view relies on the struct being exactly PARAMS scalars.
            ::core::assert!(
                ::core::mem::size_of::<#ident>() == #n_params * ::core::mem::size_of::<#ty>()
            );
        }
    }

    /// The network's inherent impl: constants, constructors, the per-sample and batch methods,
    /// `prepare`, and the flat parameter view.
    fn inherent_impl(&self) -> TokenStream {
        let ident = &self.net.ident;
        let penalty = self.penalty_terms();
        let consts = self.consts();
        let constructors = self.constructors();
        let per_sample = self.per_sample_methods(&penalty);
        let batch = self.batch_methods(&penalty);
        let prepare = self.prepare_method();
        let flat = self.flat_accessors();
        quote! {
            #[automatically_derived]
            #[allow(clippy::all, clippy::pedantic, clippy::nursery, unused_parens, unused_mut, unused_variables, non_snake_case)]
            impl #ident {
                #consts

                #constructors

                #per_sample

                #batch

                #prepare

                #flat
            }
        }
    }

    /// `INPUTS`, `OUTPUTS`, `PARAMS`, `EFFECTIVE_PARAMS` and `EXPLANATION`.
    fn consts(&self) -> TokenStream {
        let (n_in, n_out, n_params) = (self.n_in, self.n_out, self.n_params);
        let effective = self.c.prepared_split.effective_params();
        let explanation = &self.explanation;
        quote! {
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
        }
    }

    /// `zeros` and `init`.
    fn constructors(&self) -> TokenStream {
        let names = self.net.layers.iter().map(|l| &l.name);
        let dense_zeros = quote!(#KRATE::Dense::zeros());
        let inits = self.net.layers.iter().enumerate().map(|(k, l)| {
            let name = &l.name;
            let k = k as u64;
            let kind = match l.activation.init() {
                Init::Glorot => quote!(Glorot),
                Init::He => quote!(He),
                Init::LeCun => quote!(LeCun),
            };
            quote!(#KRATE::__private::init_dense(&mut net.#name, seed, #k, #KRATE::__private::InitKind::#kind);)
        });
        quote! {
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
        }
    }

    /// The weight penalties' value and gradient terms (see [`PenaltyTerms`]).
    fn penalty_terms(&self) -> PenaltyTerms {
        let Some(p) = &self.c.penalty else {
            return PenaltyTerms {
                value: TokenStream::new(),
                backward: TokenStream::new(),
            };
        };
        let (scalar, paths) = (self.net.scalar, &self.paths);
        let pen = format_ident!("__penalty");
        let value = Emitter::new(&p.value, scalar, paths).body(&[Dest::Local(pen.clone())]);
        let mut dests = vec![Dest::Local(pen.clone())];
        for (l, g) in self.net.layers.iter().zip(&p.grad_roots) {
            if g.is_some() {
                let name = &l.name;
                dests.push(Dest::AddInto(quote!(grad.#name.w)));
            }
        }
        let backward = Emitter::new(&p.backward, scalar, paths).body(&dests);
        PenaltyTerms {
            value: quote!(+ { #value #pen }),
            backward: quote!(+ { #backward #pen }),
        }
    }

    /// The per-sample methods: `forward`, `predict_class`, `latent`, `loss`, `backward` and
    /// `backward_scaled`.
    fn per_sample_methods(&self, penalty: &PenaltyTerms) -> TokenStream {
        let (ty, n_in, n_out, out) = (&self.ty, self.n_in, self.n_out, &self.out);
        let n_latent = self.net.fan_in(self.net.layers.len() - 1);
        let forward_body = self.body(&self.c.forward);
        let latent_body = self.body(&self.c.latent);
        let loss_body = self.body(&self.c.loss);
        let backward_body = Emitter::new(&self.c.backward, self.net.scalar, &self.paths)
            .body(&self.backward_dests());
        let one = scalar_lit(self.net.scalar, 1.0);
        let predict_class = predict_class(self.net);
        let (penalty_value, penalty_backward) = (&penalty.value, &penalty.backward);
        quote! {
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
        }
    }

    /// The batch methods: `forward_batch`, `loss_batch`, `backward_batch` and `backward_sum`,
    /// each a [`batch_loop`](Self::batch_loop) over its program's split.
    fn batch_methods(&self, penalty: &PenaltyTerms) -> TokenStream {
        let (ty, n_in, n_out, out) = (&self.ty, self.n_in, self.n_out, &self.out);
        let c = self.c;
        let forward_batch_loop = self.batch_loop(
            &c.forward_split,
            &[LaneDest::Rows(quote!(out))],
            &[Dest::Local(out.clone())],
            quote!(out[i] = #out;),
            false,
        );
        let loss_batch_loop = self.batch_loop(
            &c.loss_split,
            &[LaneDest::AddInto(quote!(total))],
            &[Dest::Local(out.clone())],
            quote!(total += #out;),
            true,
        );
        let backward_batch_loop = {
            let mut lane_dests = vec![LaneDest::AddInto(quote!(total))];
            lane_dests.extend(self.grad_places().into_iter().map(LaneDest::AddInto));
            let inner = self.batch_loop(
                &c.backward_split,
                &lane_dests,
                &self.backward_dests(),
                quote!(total += #out;),
                true,
            );
            quote!(let seed = scale; #inner)
        };
        let penalty_value = &penalty.value;
        // In `backward_sum`, once for the batch: `n scale` times the penalty's gradient.
        let penalty_batch = if c.penalty.is_some() {
            let penalty_backward = &penalty.backward;
            quote! {
                {
                    let seed = scale * xs.len() as #ty;
                    total += xs.len() as #ty * (0.0 #penalty_backward);
                }
            }
        } else {
            TokenStream::new()
        };
        let isa = quote!(__I: #KRATE::__private::simd::Isa);
        quote! {
            /// The outputs of a batch of samples.
            ///
            /// # Panics
            /// If `xs` and `out` have different lengths.
            #[track_caller]
            pub fn forward_batch(&self, xs: &[[#ty; #n_in]], out: &mut [[#ty; #n_out]]) {
                ::core::assert_eq!(xs.len(), out.len(), "forward_batch: {} inputs but {} output rows", xs.len(), out.len());
                #KRATE::__private::multiversion!(self, __forward_batch, (xs, out))
            }

            // The batch bodies, generic over the instruction set they are compiled for: the
            // public methods call them through `multiversion!`, which picks the machine's
            // vector units at run time (with `std` on x86-64). Unsafe: they use the
            // instructions of `__I::LEVEL` (the chunk transposes), so the processor must have
            // them.
            #[doc(hidden)]
            #[inline(always)]
            unsafe fn __forward_batch<#isa>(&self, xs: &[[#ty; #n_in]], out: &mut [[#ty; #n_out]]) {
                #forward_batch_loop
            }

            #[doc(hidden)]
            #[inline(always)]
            unsafe fn __loss_batch<#isa>(&self, xs: &[[#ty; #n_in]], ys: &[[#ty; #n_out]]) -> #ty {
                let mut total: #ty = 0.0;
                #loss_batch_loop
                total
            }

            #[doc(hidden)]
            #[inline(always)]
            unsafe fn __backward_sum<#isa>(&self, xs: &[[#ty; #n_in]], ys: &[[#ty; #n_out]], scale: #ty, grad: &mut Self) -> #ty {
                let mut total: #ty = 0.0;
                #backward_batch_loop
                total
            }

            /// The mean loss of a batch.
            ///
            /// # Panics
            /// If `xs` and `ys` have different lengths or are empty.
            #[track_caller]
            pub fn loss_batch(&self, xs: &[[#ty; #n_in]], ys: &[[#ty; #n_out]]) -> #ty {
                ::core::assert_eq!(xs.len(), ys.len(), "loss_batch: {} inputs but {} targets", xs.len(), ys.len());
                ::core::assert!(!xs.is_empty(), "loss_batch: empty batch");
                let total: #ty = #KRATE::__private::multiversion!(self, __loss_batch, (xs, ys));
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
                let mut total: #ty = #KRATE::__private::multiversion!(self, __backward_sum, (xs, ys, scale, grad));
                #penalty_batch
                total
            }
        }
    }

    /// A batch loop over `xs` (and `ys` if `has_y`): the hoisted values of `sp` once, then
    /// chunks of LANES samples with the samples across SIMD lanes (see `emit_lanes`) into
    /// `lane_dests`, then the remaining samples one by one into `dests`, each followed by `each`.
    fn batch_loop(
        &self,
        sp: &Split,
        lane_dests: &[LaneDest],
        dests: &[Dest],
        each: TokenStream,
        has_y: bool,
    ) -> TokenStream {
        let lanes = crate::emit_lanes::lanes(self.net.scalar);
        let chunk_setup = self.chunk_setup(lanes, has_y);
        let bind = if has_y {
            quote!(let (x, y) = (&xs[i], &ys[i]);)
        } else {
            quote!(let x = &xs[i];)
        };
        let pre = self.hoisted_body(sp);
        let p = self.hoisted_paths(sp);
        let lane_body = LaneEmitter::new(&sp.sample, self.net.scalar, &p).body(lane_dests);
        let body = Emitter::new(&sp.sample, self.net.scalar, &p).body(dests);
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
    }

    /// The start of a chunk: its inputs transposed into `xl` (and its targets into `yl` if
    /// `has_y`), sample `s` of the chunk in lane `s`.
    fn chunk_setup(&self, lanes: usize, has_y: bool) -> TokenStream {
        let ty = &self.ty;
        // The chunk's rows as one fixed-size array (with a bounds check per sample, LLVM built
        // each lane vector one element at a time), transposed by whole registers.
        let lanes_of = |name: TokenStream, local: Ident, n: usize| {
            let rows = chunk_rows(&name, ty, n, lanes, false);
            let copy = transpose(ty, lanes, n, &rows, &quote!(&mut #local));
            quote! {
                let mut #local = [[0.0 as #ty; #lanes]; #n];
                #copy
            }
        };
        let x_setup = lanes_of(quote!(xs), format_ident!("xl"), self.n_in);
        let y_setup = has_y.then(|| lanes_of(quote!(ys), format_ident!("yl"), self.n_out));
        quote! {
            let base = chunk * #lanes;
            #x_setup
            #y_setup
        }
    }

    /// Paths for the per-sample part of a split: parameters read in place, hoisted values
    /// from the locals `h<k>` that [`hoisted_body`](Self::hoisted_body) binds.
    fn hoisted_paths(&self, sp: &Split) -> HashMap<Symbol, TokenStream> {
        let mut p = self.paths.clone();
        for (k, f) in sp.frontier.iter().enumerate() {
            let path = match f.param {
                Some(s) => self.paths[&s].clone(),
                None => {
                    let h = format_ident!("h{}", k);
                    quote!(#h)
                }
            };
            p.insert(f.symbol, path);
        }
        p
    }

    /// The parameter-only part of a split, its values bound to the locals `h<k>`.
    fn hoisted_body(&self, sp: &Split) -> TokenStream {
        let dests: Vec<Dest> = sp
            .frontier
            .iter()
            .enumerate()
            .filter(|(_, f)| f.root.is_some())
            .map(|(k, _)| Dest::Local(format_ident!("h{}", k)))
            .collect();
        Emitter::new(&sp.hoisted, self.net.scalar, &self.paths).body(&dests)
    }

    /// `prepare`: the forward split's hoisted values, then the prepared struct of them.
    fn prepare_method(&self) -> TokenStream {
        let prepared = &self.prepared;
        let fs = &self.c.prepared_split;
        let pre = self.hoisted_body(fs);
        let inits = fs.frontier.iter().enumerate().map(|(k, f)| {
            let name = prepared_field(k);
            let value = match f.param {
                Some(s) => self.paths[&s].clone(),
                None => {
                    let h = format_ident!("h{}", k);
                    quote!(#h)
                }
            };
            if f.input_major {
                quote!(#name: #KRATE::__private::transpose(&#value))
            } else {
                quote!(#name: #value)
            }
        });
        quote! {
            /// Computes every value that depends on the parameters only (for a stack of
            /// linear layers, the collapsed `W'` and `b'`) and returns the inference form,
            /// whose `forward` does only per-sample work. Call it again after the
            /// parameters change.
            pub fn prepare(&self) -> #prepared {
                #pre
                #prepared { #(#inits,)* }
            }
        }
    }

    /// `params` and `params_mut`, through the `Flat` impl.
    fn flat_accessors(&self) -> TokenStream {
        let ty = &self.ty;
        quote! {
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
    }

    /// The prepared struct's impl: `forward` from its fields, `predict_class` and
    /// `forward_batch`.
    fn prepared_impl(&self) -> TokenStream {
        let (ty, n_in, n_out, out) = (&self.ty, self.n_in, self.n_out, &self.out);
        let prepared = &self.prepared;
        let fs = &self.c.prepared_split;
        let mut paths = self.paths.clone();
        for (k, f) in fs.frontier.iter().enumerate() {
            let name = prepared_field(k);
            paths.insert(f.symbol, quote!(self.#name));
        }
        let forward =
            Emitter::new(&fs.sample, self.net.scalar, &paths).body(&[Dest::Local(out.clone())]);
        let predict_class = predict_class(self.net);
        quote! {
            #[automatically_derived]
            #[allow(clippy::all, clippy::pedantic, clippy::nursery, unused_parens, unused_mut, unused_variables, non_snake_case, dead_code)]
            impl #prepared {
                /// The network's output for one sample (equal to the network's own `forward`
                /// up to float rounding).
                #[inline]
                pub fn forward(&self, x: &[#ty; #n_in]) -> [#ty; #n_out] {
                    #forward
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
        }
    }

    /// `Default`, as `zeros`.
    fn default_impl(&self) -> TokenStream {
        let ident = &self.net.ident;
        quote! {
            #[automatically_derived]
            impl ::core::default::Default for #ident {
                /// Every weight and bias zero, as [`Self::zeros`].
                #[inline]
                fn default() -> Self {
                    Self::zeros()
                }
            }
        }
    }

    /// The runtime's `Flat`: the struct viewed as `PARAMS` scalars.
    fn flat_impl(&self) -> TokenStream {
        let (ident, ty, n_params) = (&self.net.ident, &self.ty, self.n_params);
        quote! {
            // SAFETY: the struct is #[repr(C)] and made only of `Dense<T, _, _>` fields, which
            // are #[repr(C)] arrays of T; its size is asserted above to be PARAMS values of T.
            unsafe impl #KRATE::__private::Flat<#ty> for #ident {
                const N: usize = #n_params;
            }
        }
    }

    /// The runtime's `Network` trait, through the inherent methods.
    fn network_impl(&self) -> TokenStream {
        let net = self.net;
        let (ident, ty) = (&net.ident, &self.ty);
        let (n_in, n_out, n_params) = (self.n_in, self.n_out, self.n_params);
        let tensors = net.layers.iter().enumerate().flat_map(|(k, l)| {
            let (i, o) = (net.fan_in(k), l.width);
            let w = format!("{}.w", l.name);
            let b = format!("{}.b", l.name);
            [quote!((#w, &[#o, #i])), quote!((#b, &[#o]))]
        });
        // What the loss needs of its targets, checked by the trainers before they use a data
        // set.
        let targets = match net.loss.targets() {
            Targets::Probabilities => quote!(Probabilities),
            Targets::Distribution => quote!(Distribution),
            Targets::Real => quote!(Real),
        };
        // Per sample in the batch code, its parameter-only work spread as the compiler priced it.
        let gradient_flops = {
            let split = &self.c.backward_split;
            let (sample, _) = split.sample.flops();
            let (_, hoisted) = split.hoisted.flops();
            sample.saturating_add(hoisted / crate::simplify::cost::Amortization::BATCH.0)
        };
        quote! {
            #[automatically_derived]
            impl #KRATE::Network for #ident {
                type Scalar = #ty;
                const INPUTS: usize = #n_in;
                const OUTPUTS: usize = #n_out;
                const PARAMS: usize = #n_params;
                const TARGETS: #KRATE::Targets = #KRATE::Targets::#targets;
                const GRADIENT_FLOPS: usize = #gradient_flops;
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
        }
    }
}

/// The name of the prepared struct's field holding value `k` of the forward split's frontier.
fn prepared_field(k: usize) -> Ident {
    format_ident!("p{}", k)
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
