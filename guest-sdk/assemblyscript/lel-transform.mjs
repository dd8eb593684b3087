// lel-transform.mjs: the AssemblyScript adapter for the lel:signal contract.
//
// The contract (wit/lel.wit) names two exports `state-ptr` and `state-len`;
// AssemblyScript cannot spell an export with a dash (`export { f as
// "state-ptr" }` is a parse error and `@external` only names imports). This
// asc transform renames them after compilation, inside asc itself:
//
//     statePtr -> state-ptr        stateLen -> state-len
//     eventsPtr -> events-ptr      eventsLen -> events-len
//
// `init`, `process` and `memory` already match, and AssemblyScript's `u64`
// is the contract's `i64` clock.
//
// It also puts the signal's `frame` inside `process`. lel.ts's `process`
// renders four frames per loop iteration and calls `frame` from five
// places, each a function of its own (`__lelFrame0` .. `__lelFrame4`) that
// calls it through the table, as a function reference. When the entry file
// calls `signal(setup, frame)` with a function it declares, the transform
// gives each of the five a copy of that function's body and has Binaryen
// inline them (each has one caller): no call and no function entry, where
// the host checks for runaways, per frame. The same instructions run, so
// the samples are the same; otherwise the five call through the table.
//
// Last, it reads the helpers' fields once per block (`hoistFields` below):
// each numeric field of a helper held in a module-level variable that
// nothing `process` runs writes is loaded into a local at the start of
// `process`, and the frames read the local instead of wasm memory (which
// the compiled code must read again after every store). A frame that
// writes a helper's field through `changetype<usize>(helper)` arithmetic
// is not seen; through the helper itself it is. LEL_TRANSFORM_DEBUG=1
// prints which fields are read once and why the others stay in memory.
// Use it with
//
//     asc sine.ts --transform ./lel-transform.mjs ...
//
// A module built without it exports `statePtr`/`stateLen`, which the host
// does not know: `lel-host check` then reports the missing state region.

const RENAMES = [
  ["statePtr", "state-ptr"],
  ["stateLen", "state-len"],
  ["eventsPtr", "events-ptr"],
  ["eventsLen", "events-len"],
];

// The five call sites of `frame` in lel.ts's `process`.
const FRAME_SITES = ["__lelFrame0", "__lelFrame1", "__lelFrame2", "__lelFrame3", "__lelFrame4"];

export default class LelContractNames {
  // The entry file's `signal(setup, frame)`: the internal name of `frame`
  // ("chain/frame"), or null.
  frame = null;

  afterParse(parser) {
    const found = [];
    for (const source of parser.sources) {
      if (source.sourceKind !== 1 /* SourceKind.UserEntry */) continue;
      const declared = new Set();
      for (const st of source.statements) {
        if (st.name && typeof st.name.text === "string" && st.body !== undefined) declared.add(st.name.text);
      }
      for (const st of source.statements) {
        const call = st.expression;
        if (!call || !call.expression || call.expression.text !== "signal") continue;
        const arg = Array.isArray(call.args) && call.args.length === 2 ? call.args[1] : null;
        if (arg && typeof arg.text === "string" && declared.has(arg.text)) {
          found.push(`${source.internalPath}/${arg.text}`);
        }
      }
    }
    this.frame = found.length === 1 ? found[0] : null;
  }

  afterCompile(module) {
    const binaryen = this.binaryen;
    for (const [from, to] of RENAMES) {
      const ref = module.getExport(from);
      if (!ref) continue;
      const info = binaryen.getExportInfo(ref);
      if (info.kind !== binaryen.ExternalFunction) {
        throw new Error(`lel-transform: export ${from} is not a function`);
      }
      module.removeExport(from);
      module.addFunctionExport(info.value, to);
    }
    this.inlineFrame(module, binaryen);
    this.hoistFields(module, binaryen);
  }

  // The helpers' fields in locals: `process` reads every numeric field of
  // a helper held in a module-level variable (`const osc = new Osc()`)
  // that nothing reachable from `process` writes, once, into a local, and
  // the frames read the local. Cranelift must otherwise load a field again
  // after every store to wasm memory (it cannot tell that the delay line's
  // stores leave the helpers alone); the Zig SDK's struct form does the
  // same by hand. Which fields stay in memory, per helper variable:
  // those written through it (`lowpass`'s cached coefficient, a frame's
  // `echo.feedback = x`), through any variable of a related class, or
  // through an address this pass cannot place (a parameter, a call's
  // result: every field of that type at that offset), and all of them when
  // `process` reassigns the variable, calls through the table or uses an
  // instruction this pass does not know. Stores through an address
  // computed from a number (`store<f64>(this.phase, x)`, `line + i * 4`,
  // a constant) are to claimed state or buffers, not to helpers: a frame
  // that writes a helper's field through `changetype<usize>(helper)`
  // arithmetic is not seen (lel.ts says so).
  hoistFields(module, binaryen) {
    const program = this.program;
    const exp = module.getExport("process");
    if (!program || !exp) return;
    const processName = binaryen.getExportInfo(exp).value;
    const sdk = processName.replace(/\/process$/, "");
    if (sdk === processName) return;
    const id = (name) => binaryen[`_Binaryen${name}Id`]();
    const ID = {};
    for (const n of ["Block", "If", "Loop", "Break", "Switch", "Call", "CallIndirect", "LocalGet", "LocalSet",
      "GlobalGet", "GlobalSet", "Load", "Store", "Const", "Unary", "Binary", "Select", "Drop", "Return",
      "MemorySize", "MemoryGrow", "Nop", "Unreachable", "MemoryFill", "MemoryCopy"]) ID[n] = id(n);
    const NUMERIC = { f64: [binaryen.f64, 8], f32: [binaryen.f32, 4], i64: [binaryen.i64, 8], u64: [binaryen.i64, 8],
      i32: [binaryen.i32, 4], u32: [binaryen.i32, 4], usize: [binaryen.i32, 4], isize: [binaryen.i32, 4] };

    // Module-level variables holding objects: their class, by global name.
    const classOf = new Map();
    for (const el of program.elementsByName.values()) {
      const cls = el.type && el.type.classReference;
      if (cls && el.internalName && module.getGlobal(el.internalName)) classOf.set(el.internalName, cls);
    }
    const fieldsOf = (cls) => {
      const out = [];
      for (const proto of (cls.members || new Map()).values()) {
        const f = proto.instance;
        if (!f || typeof f.memoryOffset !== "number" || f.memoryOffset < 0 || !f.type) continue;
        out.push({ offset: f.memoryOffset, name: proto.name, type: f.type.toString() });
      }
      return out;
    };
    const related = (a, b) => {
      for (let c = a; c; c = c.base) if (c === b) return true;
      for (let c = b; c; c = c.base) if (c === a) return true;
      return false;
    };
    // Candidates: numeric fields of the SDK's helpers held in variables.
    const candidates = [];
    for (const [global, cls] of classOf) {
      if (!cls.internalName.startsWith(sdk + "/")) continue;
      for (const f of fieldsOf(cls)) {
        const t = NUMERIC[f.type];
        if (t) candidates.push({ global, cls, offset: f.offset, type: t[0], bytes: t[1], name: f.name, keep: true });
      }
    }
    if (candidates.length === 0) return;

    class Unknown extends Error {}
    // The child slots of each expression this pass knows (`getX`/`setX`);
    // blocks' and calls' lists are walked apart. Anything else stops it.
    const SLOTS = [
      ["If", ["Condition", "IfTrue", "IfFalse"]], ["Loop", ["Body"]], ["Break", ["Condition", "Value"]],
      ["Switch", ["Condition", "Value"]], ["LocalSet", ["Value"]], ["GlobalSet", ["Value"]], ["Load", ["Ptr"]],
      ["Store", ["Ptr", "Value"]], ["Unary", ["Value"]], ["Binary", ["Left", "Right"]],
      ["Select", ["IfTrue", "IfFalse", "Condition"]], ["Drop", ["Value"]], ["Return", ["Value"]],
      ["MemoryGrow", ["Delta"]], ["MemoryFill", ["Dest", "Value", "Size"]], ["MemoryCopy", ["Dest", "Source", "Size"]],
    ];
    const slotsOf = new Map(SLOTS.map(([name, slots]) => [ID[name], [binaryen[name], slots]]));
    const LEAVES = [ID.LocalGet, ID.GlobalGet, ID.Const, ID.MemorySize, ID.Nop, ID.Unreachable];
    const forEachChild = (e, fn) => {
      const k = binaryen.getExpressionId(e);
      const list = (W, count, get, set) => {
        for (let i = 0; i < W[count](e); i++) fn(W[get](e, i), (x) => W[set](e, i, x));
      };
      if (k === ID.Block) list(binaryen.Block, "getNumChildren", "getChildAt", "setChildAt");
      else if (k === ID.Call) list(binaryen.Call, "getNumOperands", "getOperandAt", "setOperandAt");
      else if (slotsOf.has(k)) {
        const [W, slots] = slotsOf.get(k);
        if ((k === ID.Load || k === ID.Store) && W.isAtomic(e)) throw new Unknown("atomic");
        for (const slot of slots) {
          const c = W[`get${slot}`](e);
          if (c) fn(c, (n) => W[`set${slot}`](e, n));
        }
      } else if (!LEAVES.includes(k)) {
        throw new Unknown(k === ID.CallIndirect ? "call_indirect" : `expression ${k}`);
      }
    };
    const walk = (e, fn) => { fn(e); forEachChild(e, (c) => walk(c, fn)); };

    // Locals that only ever hold one module-level variable's value (set
    // from it, or from another such local: an inlined method's `this`).
    const aliasesIn = (info) => {
      const sets = new Map();
      walk(info.body, (e) => {
        if (binaryen.getExpressionId(e) !== ID.LocalSet) return;
        const i = binaryen.LocalSet.getIndex(e);
        const v = binaryen.LocalSet.getValue(e);
        const k = binaryen.getExpressionId(v);
        const from = k === ID.GlobalGet ? ["global", binaryen.GlobalGet.getName(v)]
          : k === ID.LocalGet ? ["local", binaryen.LocalGet.getIndex(v)]
          : k === ID.Const ? ["const"] : ["other"];
        if (!sets.has(i)) sets.set(i, []);
        sets.get(i).push(from);
      });
      const params = binaryen.expandType(info.params).length;
      const alias = new Map();
      const resolve = (i, seen) => {
        if (alias.has(i)) return alias.get(i);
        if (i < params || !sets.has(i) || seen.has(i)) return null;
        seen.add(i);
        // A constant is the zero Binaryen's inlining gives an inlined
        // function's locals before their first use: no object at all.
        let g;
        for (const [kind, x] of sets.get(i)) {
          if (kind === "const") continue;
          const h = kind === "global" ? x : kind === "local" ? resolve(x, seen) : null;
          if (h === null || (g !== undefined && g !== h)) { g = null; break; }
          g = h;
        }
        seen.delete(i);
        return g === undefined ? null : g;
      };
      for (const i of sets.keys()) alias.set(i, resolve(i, new Set()));
      return alias;
    };
    // Where a store's address points: ["var", global], ["raw"] or ["unknown"].
    const place = (ptr, alias) => {
      const k = binaryen.getExpressionId(ptr);
      if (k === ID.GlobalGet) {
        const g = binaryen.GlobalGet.getName(ptr);
        return classOf.has(g) ? ["var", g] : ["raw"];
      }
      if (k === ID.LocalGet) {
        const g = alias.get(binaryen.LocalGet.getIndex(ptr)) ?? null;
        if (!g) return ["unknown"];
        return classOf.has(g) ? ["var", g] : ["raw"];
      }
      if (k === ID.Const || k === ID.Binary) return ["raw"];
      if (k === ID.Block) {
        // An inlined getter: the block's value is its last child's, unless
        // something breaks out of it with another.
        const n = binaryen.Block.getNumChildren(ptr);
        const label = binaryen.Block.getName(ptr);
        let broken = false;
        if (label) walk(ptr, (x) => {
          const xk = binaryen.getExpressionId(x);
          if ((xk === ID.Break && binaryen.Break.getName(x) === label) || xk === ID.Switch) broken = true;
        });
        return n > 0 && !broken ? place(binaryen.Block.getChildAt(ptr, n - 1), alias) : ["unknown"];
      }
      if (k === ID.Load) {
        // A numeric field of a known variable's object: an address. Any
        // other value read from memory may be an object (an array's
        // element, a field holding a helper).
        const base = place(binaryen.Load.getPtr(ptr), alias);
        if (base[0] !== "var") return ["unknown"];
        const off = binaryen.Load.getOffset(ptr);
        const f = fieldsOf(classOf.get(base[1])).find((x) => x.offset === off);
        return f && NUMERIC[f.type] ? ["raw"] : ["unknown"];
      }
      return ["unknown"];
    };
    // LEL_TRANSFORM_DEBUG=1: say which fields stay in memory, and why.
    const debug = Boolean(process.env.LEL_TRANSFORM_DEBUG);
    let why = "";
    const drop = (pred) => {
      for (const c of candidates) {
        if (!c.keep || !pred(c)) continue;
        c.keep = false;
        if (debug) console.error(`lel-transform: ${c.global}.${c.name} stays in memory: ${why}`);
      }
    };

    // Everything `process` runs: itself and the functions it calls.
    const funcs = new Map();
    const visit = (name) => {
      if (funcs.has(name)) return;
      const ref = module.getFunction(name);
      const info = binaryen.getFunctionInfo(ref);
      funcs.set(name, info);
      if (info.module) return; // an import: the host writes no helper
      walk(info.body, (e) => {
        if (binaryen.getExpressionId(e) === ID.Call) visit(binaryen.Call.getTarget(e));
      });
    };
    try {
      visit(processName);
      for (const info of funcs.values()) {
        if (info.module) continue;
        const alias = aliasesIn(info);
        walk(info.body, (e) => {
          const k = binaryen.getExpressionId(e);
          if (k === ID.GlobalSet) {
            const g = binaryen.GlobalSet.getName(e);
            why = `${info.name} assigns ${g}`;
            drop((c) => c.global === g);
          } else if (k === ID.Store) {
            const off = binaryen.Store.getOffset(e);
            const bytes = binaryen.Store.getBytes(e);
            const type = binaryen.Store.getValueType(e);
            const at = place(binaryen.Store.getPtr(e), alias);
            why = `${info.name} stores ${bytes} bytes at offset ${off} through ${at[0] === "var" ? at[1] : "an unknown address"}`;
            const same = (c) => c.offset === off && c.bytes === bytes && c.type === type;
            if (at[0] === "var") {
              const cls = classOf.get(at[1]);
              drop((c) => same(c) && related(c.cls, cls));
            } else if (at[0] === "unknown") drop(same);
          } else if (k === ID.MemoryFill || k === ID.MemoryCopy) {
            const W = k === ID.MemoryFill ? binaryen.MemoryFill : binaryen.MemoryCopy;
            why = `${info.name} fills or copies memory at an unknown address`;
            if (place(W.getDest(e), alias)[0] !== "raw") drop(() => true);
          }
        });
      }
    } catch (e) {
      if (!(e instanceof Unknown)) throw e;
      if (debug) console.error(`lel-transform: every field stays in memory: process runs ${e.message}`);
      return;
    }
    const kept = candidates.filter((c) => c.keep);
    if (kept.length === 0) return;

    // Rewrite `process`: each kept field read once at entry into a local.
    const ref = module.getFunction(processName);
    const info = funcs.get(processName);
    const alias = aliasesIn(info);
    const locals = new Map();
    const reads = [];
    for (const c of kept) {
      const index = binaryen._BinaryenFunctionAddVar(ref, c.type);
      locals.set(`${c.global}@${c.offset}@${c.type}@${c.bytes}`, index);
      const ptr = module.global.get(c.global, binaryen.i32);
      const load = c.type === binaryen.f64 ? module.f64.load(c.offset, 8, ptr)
        : c.type === binaryen.f32 ? module.f32.load(c.offset, 4, ptr)
        : c.type === binaryen.i64 ? module.i64.load(c.offset, 8, ptr)
        : module.i32.load(c.offset, 4, ptr);
      reads.push(module.local.set(index, load));
    }
    const local = (e) => {
      if (binaryen.getExpressionId(e) !== ID.Load) return null;
      const at = place(binaryen.Load.getPtr(e), alias);
      if (at[0] !== "var") return null;
      const key = `${at[1]}@${binaryen.Load.getOffset(e)}@${binaryen.getExpressionType(e)}@${binaryen.Load.getBytes(e)}`;
      return locals.has(key) ? locals.get(key) : null;
    };
    const rewrite = (e) => forEachChild(e, (c, set) => {
      const i = local(c);
      if (i !== null) set(module.local.get(i, binaryen.getExpressionType(c)));
      else rewrite(c);
    });
    rewrite(info.body);
    const body = binaryen.getFunctionInfo(ref).body;
    binaryen._BinaryenFunctionSetBody(ref, module.block(null, [...reads, body], binaryen.getExpressionType(body)));
    if (debug) console.error(`lel-transform: read once per block: ${kept.map((c) => `${c.global}.${c.name}`).join(" ")}`);
  }

  inlineFrame(module, binaryen) {
    const frame = this.frame && module.getFunction(this.frame);
    if (!frame) return;
    const body = binaryen.getFunctionInfo(frame);
    const sites = new Map();
    for (let i = 0; i < module.getNumFunctions(); i++) {
      const info = binaryen.getFunctionInfo(module.getFunctionByIndex(i));
      const site = FRAME_SITES.find((s) => info.name.endsWith(`/${s}`));
      if (site) sites.set(site, info);
    }
    if (sites.size !== FRAME_SITES.length) return;
    for (const info of sites.values()) {
      if (info.params !== body.params || info.results !== body.results) return;
    }
    // A `frame` with a loop of its own (a voice loop: `poly-synth`) stays
    // one function, called directly from the five sites (asc inlines those
    // into `process`): its loop checks for runaways on every iteration
    // anyway, and written out five times in `process` it measured 9 %
    // slower than called through the table.
    if (binaryen.emitText(body.body).includes("(loop")) {
      for (const info of sites.values()) {
        const args = [0, 1].map((i) => module.local.get(i, binaryen.expandType(info.params)[i]));
        module.removeFunction(info.name);
        module.addFunction(info.name, info.params, info.results, [], module.call(this.frame, args, info.results));
      }
      return;
    }
    // Otherwise Binaryen's inlining with its defaults (asc has not set its
    // own yet): a function with one caller is inlined whatever its size
    // (asc's -O3 stops at 200). First into `frame` the helpers only it
    // calls (its oscillators' and filters' `tick`s), as asc would have done
    // for a `frame` called once, with the five sites kept apart (exported
    // for the while); then `frame`, helpers included, into each site, and
    // the sites into `process`. Copied first, the helpers would have six
    // callers and stay calls: a function entry each, per frame.
    const keep = [...sites.keys()].map((s) => `__lel_keep_${s}`);
    [...sites.values()].forEach((info, i) => module.addFunctionExport(info.name, keep[i]));
    module.runPasses(["inlining"]);
    keep.forEach((name) => module.removeExport(name));
    const inlined = binaryen.getFunctionInfo(module.getFunction(this.frame));
    for (const info of sites.values()) {
      module.removeFunction(info.name);
      module.addFunction(info.name, inlined.params, inlined.results, inlined.vars, module.copyExpression(inlined.body));
    }
    module.runPasses(["inlining"]);
  }
}
