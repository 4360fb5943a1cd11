"use strict";
// factory(Class)(...args) returns a constructor without parameters: each `new` (or
// `super()` from a subclass) builds `new Class(...args)`, calls its init() when
// present, and copies the built instance's own properties onto the new object,
// whose prototype chain keeps Class.prototype so subclasses can call super.method().
function factory(Target) {
  return (...args) => {
    function Factory() {
      const built = new Target(...args);
      if (typeof built.init === "function") built.init();
      Object.defineProperties(this, Object.getOwnPropertyDescriptors(built));
    }
    Factory.prototype = Object.create(Target.prototype, {
      constructor: { value: Factory, writable: true, configurable: true },
    });
    Object.defineProperty(Factory, "name", { value: Target.name || "Factory" });
    return Factory;
  };
}
exports.factory = factory;
exports.default = { factory };
