/** Placeholder: the optim helper provides this module. */
export {};
