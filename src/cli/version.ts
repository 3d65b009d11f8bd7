// The version, apart from everything else, so `qnet --version` loads nothing more (bin/qnet.js).
export const VERSION = '0.1.0';
