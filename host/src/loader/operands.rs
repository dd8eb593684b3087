//! Constants second: `c - x * k` rewritten as `x * -k + c` in every
//! function body before it is compiled (part of the loader's rewrite, with
//! the stop checks of [`super::instrument`]).
//!
//! Cranelift reads a floating-point constant that is an instruction's
//! second operand from its constant pool within the instruction
//! (`vaddsd xmm0, xmm1, [rip + c]`), but moves a constant that is the
//! first operand of a subtraction through an integer register into a
//! vector one (`movabs`, `vmovq`), at every use: two more instructions
//! and a register (wasmtime's open issue #1116). LLVM makes this rewrite
//! itself for the modules it compiles (Rust, C, Zig); binaryen
//! (AssemblyScript) and hand-written text do not. The AssemblyScript SDK's
//! chain rendered in 4 % less time with its polynomials written this way
//! (README, "Signals in any language").
//!
//! The rewrite is exact: `c - t` is `c + (-t)`, negating a product is
//! negating one of its factors (rounding is symmetric), and addition
//! commutes, so every result has the same bits. Not where `c` or `k` is a
//! NaN (which NaN a subtraction of two NaNs returns depends on their
//! order). The product's other operand `x` keeps its place, so anything
//! it does (a load that may trap, a `local.tee`) happens in the same order;
//! only a straight run of plain value instructions is read, so `x` is
//! found by counting what each instruction takes from and puts on the
//! stack, and only up to 64 instructions back, so that the pass stays
//! linear in the size of the code. Runs on the loader threads, under the
//! compile's limits.

use wasm_encoder::{Ieee32, Ieee64, Instruction};

/// How many of the last instructions [`rewrite_last`] may change: a
/// function's body can go on to the encoder but for these.
pub const WINDOW: usize = 4 * MAX_OPERAND;

/// If the last instruction of `body` (a function body so far, or its last
/// [`WINDOW`] instructions at least) subtracts a product by a constant
/// from a constant, rewrite it and them in place (`c - x * k`, or
/// `c - k * x`). Called after each instruction, the rewrites of a whole
/// body are made: an operand's own subtractions come before it.
pub fn rewrite_last(body: &mut [Instruction<'_>]) {
    if let Some(s) = body.len().checked_sub(1) {
        rewrite_at(body, s);
    }
}

/// A constant of either float type, as bits.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Const {
    F32(u32),
    F64(u64),
}

impl Const {
    fn of(i: &Instruction<'_>) -> Option<Const> {
        match i {
            Instruction::F32Const(c) => Some(Const::F32(c.bits())),
            Instruction::F64Const(c) => Some(Const::F64(c.bits())),
            _ => None,
        }
    }

    fn is_nan(self) -> bool {
        match self {
            Const::F32(b) => f32::from_bits(b).is_nan(),
            Const::F64(b) => f64::from_bits(b).is_nan(),
        }
    }

    fn negated(self) -> Instruction<'static> {
        match self {
            Const::F32(b) => Instruction::F32Const(Ieee32::new(b ^ (1 << 31))),
            Const::F64(b) => Instruction::F64Const(Ieee64::new(b ^ (1 << 63))),
        }
    }
}

/// If `body[s]` is a float subtraction of the pattern, rewrite it (the
/// instructions from `s - MAX_OPERAND - 2` on, at most).
fn rewrite_at(body: &mut [Instruction<'_>], s: usize) -> Option<()> {
    // The subtraction's second operand: a product (of its type), ending
    // at `m`.
    let m = s.checked_sub(1)?;
    let add = match (&body[s], &body[m]) {
        (Instruction::F64Sub, Instruction::F64Mul) => Instruction::F64Add,
        (Instruction::F32Sub, Instruction::F32Mul) => Instruction::F32Add,
        _ => return None,
    };
    let b = start_of(body, m)?;
    // Its first operand: the constant right before the product.
    let a = b.checked_sub(1)?;
    let c = Const::of(&body[a])?;
    // The product's constant factor: its second operand, or its first.
    let second = start_of(body, m - 1)?;
    let k_at = if Const::of(&body[m - 1]).is_some() && second == m - 1 {
        m - 1
    } else if second == b + 1 && Const::of(&body[b]).is_some() {
        b
    } else {
        return None;
    };
    let k = Const::of(&body[k_at])?;
    if c.is_nan() || k.is_nan() || std::mem::discriminant(&c) != std::mem::discriminant(&k) {
        return None;
    }
    body[k_at] = k.negated();
    // `c` moves from before the product to after it: `x * -k; c; add`.
    body[a..s].rotate_left(1);
    body[s] = add;
    Some(())
}

/// The most instructions an operand is looked for in: the rewrite stays
/// linear in the size of the code whatever it holds (a product's operand
/// in real code is a few instructions: a local, a load, an expression).
const MAX_OPERAND: usize = 64;

/// Where the instructions that compute the value `body[end]` leaves start,
/// if they are all plain value instructions (see [`takes`]) and at most
/// [`MAX_OPERAND`] of them.
fn start_of(body: &[Instruction<'_>], end: usize) -> Option<usize> {
    // Values still to be accounted for, going leftwards.
    let mut need = 1u32;
    let mut i = end;
    loop {
        need = need - 1 + takes(&body[i])?;
        if need == 0 {
            return Some(i);
        }
        if end - i >= MAX_OPERAND {
            return None;
        }
        i = i.checked_sub(1)?;
    }
}

/// How many values a plain value instruction takes from the stack (each
/// puts exactly one back); None for anything else (control, calls, stores,
/// anything whose effect on the stack depends on types not at hand).
fn takes(i: &Instruction<'_>) -> Option<u32> {
    use Instruction::*;
    Some(match i {
        LocalGet(_) | GlobalGet(_) | I32Const(_) | I64Const(_) | F32Const(_) | F64Const(_) => 0,
        LocalTee(_) | I32Load(_) | I64Load(_) | F32Load(_) | F64Load(_) | I32Load8S(_)
        | I32Load8U(_) | I32Load16S(_) | I32Load16U(_) | I64Load8S(_) | I64Load8U(_)
        | I64Load16S(_) | I64Load16U(_) | I64Load32S(_) | I64Load32U(_) | I32Eqz | I64Eqz
        | I32Clz | I32Ctz | I32Popcnt | I64Clz | I64Ctz | I64Popcnt | F32Abs | F32Neg | F32Ceil
        | F32Floor | F32Trunc | F32Nearest | F32Sqrt | F64Abs | F64Neg | F64Ceil | F64Floor
        | F64Trunc | F64Nearest | F64Sqrt | I32WrapI64 | I32TruncF32S | I32TruncF32U
        | I32TruncF64S | I32TruncF64U | I64ExtendI32S | I64ExtendI32U | I64TruncF32S
        | I64TruncF32U | I64TruncF64S | I64TruncF64U | F32ConvertI32S | F32ConvertI32U
        | F32ConvertI64S | F32ConvertI64U | F32DemoteF64 | F64ConvertI32S | F64ConvertI32U
        | F64ConvertI64S | F64ConvertI64U | F64PromoteF32 | I32ReinterpretF32
        | I64ReinterpretF64 | F32ReinterpretI32 | F64ReinterpretI64 | I32Extend8S
        | I32Extend16S | I64Extend8S | I64Extend16S | I64Extend32S | I32TruncSatF32S
        | I32TruncSatF32U | I32TruncSatF64S | I32TruncSatF64U | I64TruncSatF32S
        | I64TruncSatF32U | I64TruncSatF64S | I64TruncSatF64U => 1,
        I32Eq | I32Ne | I32LtS | I32LtU | I32GtS | I32GtU | I32LeS | I32LeU | I32GeS | I32GeU
        | I64Eq | I64Ne | I64LtS | I64LtU | I64GtS | I64GtU | I64LeS | I64LeU | I64GeS | I64GeU
        | F32Eq | F32Ne | F32Lt | F32Gt | F32Le | F32Ge | F64Eq | F64Ne | F64Lt | F64Gt | F64Le
        | F64Ge | I32Add | I32Sub | I32Mul | I32DivS | I32DivU | I32RemS | I32RemU | I32And
        | I32Or | I32Xor | I32Shl | I32ShrS | I32ShrU | I32Rotl | I32Rotr | I64Add | I64Sub
        | I64Mul | I64DivS | I64DivU | I64RemS | I64RemU | I64And | I64Or | I64Xor | I64Shl
        | I64ShrS | I64ShrU | I64Rotl | I64Rotr | F32Add | F32Sub | F32Mul | F32Div | F32Min
        | F32Max | F32Copysign | F64Add | F64Sub | F64Mul | F64Div | F64Min | F64Max
        | F64Copysign => 2,
        Select | TypedSelect(_) => 3,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::super::instrument::instrument;
    use wasmparser::{Operator, Parser, Payload};

    /// Each function's float subtractions and additions, in order.
    fn ops(bytes: &[u8]) -> Vec<Vec<&'static str>> {
        let mut fns = Vec::new();
        for payload in Parser::new(0).parse_all(bytes) {
            if let Payload::CodeSectionEntry(body) = payload.unwrap() {
                let mut seen = Vec::new();
                for op in body.get_operators_reader().unwrap() {
                    seen.push(match op.unwrap() {
                        Operator::F64Sub => "f64.sub",
                        Operator::F64Add => "f64.add",
                        Operator::F32Sub => "f32.sub",
                        Operator::F32Add => "f32.add",
                        _ => continue,
                    });
                }
                fns.push(seen);
            }
        }
        fns
    }

    /// Functions of one f64 (or f32) with the pattern in its forms, and
    /// with look-alikes that must stay as they are.
    const FUNCS: &str = r#"(module
      (memory 1)
      (func $inner (param f64) (result f64) (local.get 0))
      ;; c - x * k, c - k * x, nested, and through a load and a tee
      (func (export "a") (param f64) (result f64)
        (f64.sub (f64.const 1) (f64.mul (local.get 0) (f64.const 0.5))))
      (func (export "b") (param f64) (result f64)
        (f64.sub (f64.const 0.25) (f64.mul (f64.const 3) (local.get 0))))
      (func (export "c") (param f64) (result f64) (local f64)
        (f64.sub (f64.const -0)
          (f64.mul
            (f64.sub (f64.const 2) (f64.mul (local.tee 1 (f64.sqrt (local.get 0))) (f64.const 1e-300)))
            (f64.const 7))))
      (func (export "d") (param f64) (result f64)
        (f64.store (i32.const 8) (local.get 0))
        (f64.sub (f64.const 1e300) (f64.mul (f64.load (i32.const 8)) (f64.const -1e10))))
      ;; look-alikes: no constant factor, a call, NaN constants
      (func (export "e") (param f64) (result f64)
        (f64.sub (f64.const 1) (f64.mul (local.get 0) (local.get 0))))
      (func (export "f") (param f64) (result f64)
        (f64.sub (f64.const 1) (f64.mul (call $inner (local.get 0)) (f64.const 2))))
      (func (export "g") (param f64) (result f64)
        (f64.sub (f64.const nan:0x1234) (f64.mul (local.get 0) (f64.const 2))))
      (func (export "h") (param f64) (result f64)
        (f64.sub (f64.const 3) (f64.mul (local.get 0) (f64.const nan))))
      (func (export "i") (param f32) (result f32)
        (f32.sub (f32.const 1) (f32.mul (local.get 0) (f32.const 0.1))))
      ;; an operand longer than the rewrite looks: left as it is
      (func (export "j") (param f64) (result f64)
        (f64.sub (f64.const 1) (f64.mul LONG (f64.const 2))))
      ;; a body longer than the window the loader keeps back: all found
      (func (export "k") (param f64) (result f64)
        MANY))"#;

    /// [`FUNCS`] with its long operand written out: `x + 1 + 1 ...`, 40
    /// additions (81 instructions); and the sum of 300 `i - x * 0.5`
    /// (2,100 instructions).
    fn funcs() -> String {
        let long = (0..40).fold("(local.get 0)".to_string(), |x, _| {
            format!("(f64.add {x} (f64.const 1))")
        });
        let term =
            |i: u32| format!("(f64.sub (f64.const {i}) (f64.mul (local.get 0) (f64.const 0.5)))");
        let many = (1..300).fold(term(0), |sum, i| format!("(f64.add {sum} {})", term(i)));
        FUNCS.replace("LONG", &long).replace("MANY", &many)
    }

    #[test]
    fn a_constant_minus_a_product_by_a_constant_becomes_a_sum_with_the_same_bits() {
        let wasm = wat::parse_str(funcs()).unwrap();
        let rewritten = instrument(&wasm).unwrap();
        let (before, after) = (ops(&wasm), ops(&rewritten));
        let long: Vec<&str> = std::iter::repeat_n("f64.add", 40)
            .chain(["f64.sub"])
            .collect();
        // The sum: each term's subtraction before its addition to the sum.
        let (terms, sums): (Vec<&str>, Vec<&str>) = (0..300)
            .flat_map(|i| {
                if i == 0 {
                    vec![("f64.sub", "f64.add")]
                } else {
                    vec![("f64.sub", "f64.add"), ("f64.add", "f64.add")]
                }
            })
            .unzip();
        // $inner, then a to k.
        let expect: [(&[&str], &[&str]); 12] = [
            (&[], &[]),
            (&["f64.sub"], &["f64.add"]),
            (&["f64.sub"], &["f64.add"]),
            (&["f64.sub", "f64.sub"], &["f64.add", "f64.add"]),
            (&["f64.sub"], &["f64.add"]),
            (&["f64.sub"], &["f64.sub"]),
            (&["f64.sub"], &["f64.sub"]),
            (&["f64.sub"], &["f64.sub"]),
            (&["f64.sub"], &["f64.sub"]),
            (&["f32.sub"], &["f32.add"]),
            (&long, &long),
            (&terms, &sums),
        ];
        for (n, (b, a)) in expect.iter().enumerate() {
            assert_eq!(before[n], *b, "function {n} as written");
            assert_eq!(after[n], *a, "function {n} rewritten");
        }

        // Both run, over awkward inputs: the same bits.
        let engine = super::super::instrument::stop_engine();
        let mut store = wasmtime::Store::new(&engine, ());
        let plain = wasmtime::Module::new(&engine, &wasm).unwrap();
        let plain = wasmtime::Instance::new(&mut store, &plain, &[]).unwrap();
        let (flags, word) = super::super::instrument::stop_imports(&engine, &mut store, 0);
        let module = wasmtime::Module::new(&engine, &rewritten).unwrap();
        let checked =
            wasmtime::Instance::new(&mut store, &module, &[flags.into(), word.into()]).unwrap();
        let inputs = [
            0.0,
            -0.0,
            1.0,
            -1.5,
            0.1,
            1e-310,
            -4e-320,
            1e308,
            -1e308,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            f64::from_bits(0xfff8_0000_0000_0abc),
            std::f64::consts::PI,
            2.0 / 3.0,
        ];
        let mut compared = 0;
        for name in ["a", "b", "c", "d", "e", "f", "g", "h", "j", "k"] {
            let p = plain.get_typed_func::<f64, f64>(&mut store, name).unwrap();
            let c = checked
                .get_typed_func::<f64, f64>(&mut store, name)
                .unwrap();
            for &x in &inputs {
                let (want, got) = (
                    p.call(&mut store, x).unwrap(),
                    c.call(&mut store, x).unwrap(),
                );
                assert_eq!(
                    got.to_bits(),
                    want.to_bits(),
                    "{name}({x:e}): {got:e} rewritten, {want:e} as written"
                );
                compared += 1;
            }
        }
        let p = plain.get_typed_func::<f32, f32>(&mut store, "i").unwrap();
        let c = checked.get_typed_func::<f32, f32>(&mut store, "i").unwrap();
        for &x in &inputs {
            let x = x as f32;
            let (want, got) = (
                p.call(&mut store, x).unwrap(),
                c.call(&mut store, x).unwrap(),
            );
            assert_eq!(got.to_bits(), want.to_bits(), "i({x:e})");
            compared += 1;
        }
        assert_eq!(compared, 11 * inputs.len());
    }
}
