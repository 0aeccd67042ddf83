/**
 * The few libc functions the runtime needs, bound through koffi once, on first use.
 * Pointers are BigInt (koffi 3); a null pointer comes back as null.
 */
import koffi from 'koffi';

export const PROT_NONE = 0;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const PROT_EXEC = 4;
const MAP_PRIVATE = 0x02;
const MAP_ANONYMOUS = 0x20;
/** mmap's error return, (void *) -1, as koffi hands it back. */
const MAP_FAILED = 0xffff_ffff_ffff_ffffn;

export interface Libc {
  mmap(addr: bigint | null, length: number, prot: number, flags: number, fd: number, offset: number): bigint | null;
  mprotect(addr: bigint, length: number, prot: number): number;
  munmap(addr: bigint, length: number): number;
  posix_memalign(out: [bigint | null], alignment: number, size: number): number;
  free(ptr: bigint): void;
  getpagesize(): number;
  dlopen(file: string, mode: number): bigint | null;
  dlsym(handle: bigint, symbol: string): bigint | null;
  dlerror(): string | null;
}

let bound: Libc | undefined;

/** libc.so.6 bindings; throws a one-line error on hosts without glibc. */
export function libc(): Libc {
  if (bound) return bound;
  if (process.platform !== 'linux') throw new Error(`targets/runtime needs Linux (glibc), this host is ${process.platform}`);
  const lib = koffi.load('libc.so.6');
  bound = {
    mmap: lib.func('void *mmap(void *addr, size_t length, int prot, int flags, int fd, long offset)'),
    mprotect: lib.func('int mprotect(void *addr, size_t length, int prot)'),
    munmap: lib.func('int munmap(void *addr, size_t length)'),
    posix_memalign: lib.func('int posix_memalign(_Out_ void **memptr, size_t alignment, size_t size)'),
    free: lib.func('void free(void *ptr)'),
    getpagesize: lib.func('int getpagesize()'),
    dlopen: lib.func('void *dlopen(const char *file, int mode)'),
    dlsym: lib.func('void *dlsym(void *handle, const char *symbol)'),
    dlerror: lib.func('const char *dlerror()'),
  };
  return bound;
}

let page: number | undefined;

export function pageSize(): number {
  return (page ??= libc().getpagesize());
}

export function roundUpToPage(bytes: number): number {
  const p = pageSize();
  return Math.ceil(bytes / p) * p;
}

/** Private anonymous mapping of `length` bytes (a multiple of the page size). */
export function mapAnonymous(length: number, prot: number): bigint {
  const addr = libc().mmap(null, length, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (addr === null || addr === MAP_FAILED) throw new Error(`mmap of ${length} bytes failed (errno ${koffi.errno()})`);
  return addr;
}

export function protect(addr: bigint, length: number, prot: number): void {
  if (libc().mprotect(addr, length, prot) !== 0) throw new Error(`mprotect failed (errno ${koffi.errno()})`);
}

export function unmap(addr: bigint, length: number): void {
  if (libc().munmap(addr, length) !== 0) throw new Error(`munmap failed (errno ${koffi.errno()})`);
}

/** Heap memory aligned to `alignment` bytes (release with libc().free). */
export function alignedAlloc(bytes: number, alignment: number): bigint {
  const out: [bigint | null] = [null];
  const rc = libc().posix_memalign(out, alignment, bytes);
  if (rc !== 0 || out[0] === null) throw new Error(`posix_memalign(${alignment}, ${bytes}) failed (error ${rc})`);
  return out[0];
}

/** An ArrayBuffer over native memory (no copy); it dangles once the memory is released. */
export function nativeView(addr: bigint, bytes: number): ArrayBuffer {
  return koffi.view(addr, bytes);
}

const RTLD_NOW = 2;

/** The address of `symbol` in shared library `file` (loaded if needed): raw code pointers for generated stubs to call. */
export function symbolAddress(file: string, symbol: string): bigint {
  const c = libc();
  const handle = c.dlopen(file, RTLD_NOW);
  if (handle === null) throw new Error(`cannot load ${file}: ${c.dlerror() ?? 'unknown error'}`);
  const address = c.dlsym(handle, symbol);
  if (address === null) throw new Error(`${file} has no symbol ${symbol}: ${c.dlerror() ?? 'unknown error'}`);
  return address;
}
