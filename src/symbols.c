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

#include "internal.h"

/* Look up `addr` (relative to the module's load base for position-
 * independent modules, absolute for ET_EXEC) in the ELF file at `path`.
 * 1: found; 0: the file has no symbol for it (stripped, say); -1: the file
 * could not be read (a relative path after a chdir). */
int bw__elf_symbol(const char *path, uintptr_t addr_rel, uintptr_t addr_abs, char *name,
                   size_t size, uintptr_t *offset)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    bool found = false;
    if (fstat(fd, &st) != 0 || st.st_size < (off_t)sizeof(Elf64_Ehdr)) {
        close(fd);
        return -1;
    }
    size_t len = (size_t)st.st_size;
    const unsigned char *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED)
        return -1;
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
    munmap((void *)map, len);
    return found ? 1 : 0;
}
