"use strict";
// singleton(Class) returns a constructor whose every `new` yields the same proxy.
// The real instance is created on first use (not at `new`), so classes that
// resolve dependencies in their constructor can be declared before the
// dependency container is ready; init() runs once after creation when present.
function singleton(Target) {
  let instance = null;
  const get = () => {
    if (instance === null) {
      instance = new Target();
      if (typeof instance.init === "function") instance.init();
    }
    return instance;
  };
  const proxy = new Proxy(Object.create(Target.prototype), {
    get: (_t, prop) => Reflect.get(get(), prop),
    set: (_t, prop, value) => Reflect.set(get(), prop, value),
    has: (_t, prop) => Reflect.has(get(), prop),
    deleteProperty: (_t, prop) => Reflect.deleteProperty(get(), prop),
    ownKeys: () => Reflect.ownKeys(get()),
    getOwnPropertyDescriptor: (_t, prop) => {
      const d = Reflect.getOwnPropertyDescriptor(get(), prop);
      if (d) d.configurable = true;
      return d;
    },
  });
  function Singleton() {
    return proxy;
  }
  Singleton.prototype = Target.prototype;
  return Singleton;
}
exports.singleton = singleton;
exports.default = { singleton };
