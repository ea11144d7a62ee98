/*
 * symbols.c: function names for backtraces, static functions included.
 *
 * dladdr() only knows the dynamic symbol table, so a crash in a static
 * function (most of a program) would be reported as "??". This reads the
 * module's own .symtab (present unless the binary is stripped) and finds
 * the function that contains the address. It runs when a report is
 * formatted, after the fault, never in a signal handler.
 */
#include <elf.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <pthread.h>
#include <stdlib.h>

#include "internal.h"

/* Mapped symbol files, kept for the life of the process: a crash report
 * symbolizes a dozen frames, mostly in the same two or three modules. */
#define BW__SYMFILES 8

typedef struct symfile {
    char path[256];
    const unsigned char *map; /* NULL: the file could not be read */
    size_t len;
} symfile;

static symfile symfiles[BW__SYMFILES];
static size_t nsymfiles;
static pthread_mutex_t symfiles_lock = PTHREAD_MUTEX_INITIALIZER;

static const symfile *open_symfile(const char *path)
{
    for (size_t i = 0; i < nsymfiles; i++)
        if (strcmp(symfiles[i].path, path) == 0)
            return &symfiles[i];
    if (strlen(path) >= sizeof symfiles[0].path)
        return NULL;
    symfile *f = &symfiles[nsymfiles < BW__SYMFILES ? nsymfiles++ : BW__SYMFILES - 1];
    if (f->map != NULL)
        munmap((void *)f->map, f->len); /* full: the last slot is reused */
    strcpy(f->path, path);
    f->map = NULL;
    f->len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return f;
    struct stat st;
    if (fstat(fd, &st) == 0 && st.st_size >= (off_t)sizeof(Elf64_Ehdr)) {
        void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map != MAP_FAILED) {
            f->map = map;
            f->len = (size_t)st.st_size;
        }
    }
    close(fd);
    return f;
}

static int lookup(const unsigned char *map, size_t len, uintptr_t addr_rel, uintptr_t addr_abs,
                  char *name, size_t size, uintptr_t *offset);

/* Look up `addr` (relative to the module's load base for position-
 * independent modules, absolute for ET_EXEC) in the ELF file at `path`.
 * 1: found; 0: the file has no symbol for it (stripped, say); -1: the file
 * could not be read (a relative path after a chdir). */
int bw__elf_symbol(const char *path, uintptr_t addr_rel, uintptr_t addr_abs, char *name,
                   size_t size, uintptr_t *offset)
{
    pthread_mutex_lock(&symfiles_lock);
    const symfile *f = open_symfile(path);
    int rc = f == NULL || f->map == NULL
                 ? -1
                 : lookup(f->map, f->len, addr_rel, addr_abs, name, size, offset);
    pthread_mutex_unlock(&symfiles_lock);
    return rc;
}

static int lookup(const unsigned char *map, size_t len, uintptr_t addr_rel, uintptr_t addr_abs,
                  char *name, size_t size, uintptr_t *offset)
{
    bool found = false;
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)map;
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
        eh->e_shoff == 0 || eh->e_shoff + (size_t)eh->e_shnum * sizeof(Elf64_Shdr) > len)
        goto done;
    uintptr_t addr = eh->e_type == ET_EXEC ? addr_abs : addr_rel;
    const Elf64_Shdr *sh = (const Elf64_Shdr *)(map + eh->e_shoff);
    for (unsigned i = 0; i < eh->e_shnum && !found; i++) {
        if (sh[i].sh_type != SHT_SYMTAB || sh[i].sh_link >= eh->e_shnum)
            continue;
        const Elf64_Shdr *strs = &sh[sh[i].sh_link];
        if (sh[i].sh_offset + sh[i].sh_size > len || strs->sh_offset + strs->sh_size > len)
            continue;
        const Elf64_Sym *syms = (const Elf64_Sym *)(map + sh[i].sh_offset);
        size_t nsyms = sh[i].sh_size / sizeof(Elf64_Sym);
        const char *strtab = (const char *)(map + strs->sh_offset);
        for (size_t k = 0; k < nsyms; k++) {
            const Elf64_Sym *s = &syms[k];
            if (ELF64_ST_TYPE(s->st_info) != STT_FUNC || s->st_value == 0)
                continue;
            if (addr < s->st_value || addr >= s->st_value + (s->st_size ? s->st_size : 1))
                continue;
            if (s->st_name >= strs->sh_size)
                continue;
            strncpy(name, strtab + s->st_name, size - 1);
            name[size - 1] = '\0';
            *offset = addr - s->st_value;
            found = true;
            break;
        }
    }
done:
    return found ? 1 : 0;
}
