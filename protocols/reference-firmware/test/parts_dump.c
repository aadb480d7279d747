/*
 * Prints what parts.generated.h gives one part line (-DDFH_PART_<ID>), for test/check-parts to
 * compare with the family file. Built for the host: only the header's constants, no register access.
 */
#include <stdio.h>

#include "dfuhop/parts.generated.h"

int main(void)
{
    printf("id %s\n", DFH_PART_ID);
    printf("deviceID 0x%03X\n", DFH_PART_DEV_ID);
    printf("core %s\n", DFH_PART_CORE);
    printf("systemMemory 0x%08X\n", DFH_SYSTEM_MEMORY);
    printf("flashBase 0x%08X\n", DFH_FLASH_BASE);
#if defined(DFH_ENTRY_JUMP)
    printf("entry jump\n");
    printf("backupRegister 0x%08X\n", DFH_BACKUP_REGISTER);
    printf("backupRegisterHigh 0x%08X\n", DFH_BACKUP_REGISTER_HIGH);
    printf("dbp 0x%08X 0x%08X\n", DFH_DBP_REGISTER, DFH_DBP_BIT);
    printf("pwrClock 0x%08X 0x%08X\n", DFH_PWR_CLOCK_REGISTER, DFH_PWR_CLOCK_BIT);
    printf("backupClock 0x%08X 0x%08X\n", DFH_BACKUP_CLOCK_REGISTER, DFH_BACKUP_CLOCK_BIT);
#elif defined(DFH_ENTRY_ERASE_FIRST_PAGE)
    printf("entry erase-first-page\n");
#endif
    printf("cache %d\n", DFH_HAS_L1_CACHE);
    return 0;
}
