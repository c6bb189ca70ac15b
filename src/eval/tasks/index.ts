export * from './schema.js';
export * from './data.js';
export * from './template.js';
export * from './load.js';
export * from './yaml.js';
