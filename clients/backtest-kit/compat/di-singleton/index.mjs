import cjs from "./index.cjs";
export const singleton = cjs.singleton;
export default { singleton };
