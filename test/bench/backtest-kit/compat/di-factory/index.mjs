import cjs from "./index.cjs";
export const factory = cjs.factory;
export default { factory };
