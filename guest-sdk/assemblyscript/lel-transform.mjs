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
