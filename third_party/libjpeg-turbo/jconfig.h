/* jconfig.h for the libjpeg 6.2 API of libjpeg-turbo (2.x, 3.x), as its build writes it for an
 * 8-bit library; fastloader only compiles against these headers and opens the library at run
 * time (see csrc/core/jpeg_region.cpp), so nothing here selects code of the library itself. */
#define JPEG_LIB_VERSION  62
#define LIBJPEG_TURBO_VERSION  2.1.5
#define LIBJPEG_TURBO_VERSION_NUMBER  2001005
#define C_ARITH_CODING_SUPPORTED 1
#define D_ARITH_CODING_SUPPORTED 1
#define MEM_SRCDST_SUPPORTED 1
#define BITS_IN_JSAMPLE  8
