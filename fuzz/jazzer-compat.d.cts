/** Patch an ELF64 addon's glibc 2.38 / libstdc++ 13 needs in place; returns the number of edits. */
export declare function patchElf(b: Buffer): number;
