/** Placeholder: the nn helper provides this module. */
export {};
