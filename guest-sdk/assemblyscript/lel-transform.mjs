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
// Nothing else changes (`init`, `process`, `memory` already match, and
// AssemblyScript's `u64` is the contract's `i64` clock). Use it with
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

export default class LelContractNames {
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
  }
}
