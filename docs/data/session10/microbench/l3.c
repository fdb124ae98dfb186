#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static float sum(const float*p,size_t n){__m256 a=_mm256_setzero_ps(),b=a;for(size_t i=0;i<n;i+=16){a=_mm256_add_ps(a,_mm256_load_ps(p+i));b=_mm256_add_ps(b,_mm256_load_ps(p+i+8));}float o[8];_mm256_storeu_ps(o,_mm256_add_ps(a,b));return o[0];}
int main(int argc,char**argv){ size_t T=128ul*64*3136; float*x=aligned_alloc(64,T*4); for(size_t i=0;i<T;i++)x[i]=1; float*z=aligned_alloc(64,T*4); for(size_t i=0;i<T;i++)z[i]=1;
 for(int kb=256; kb<=32768; kb*=2){ int mb=kb; size_t n=(size_t)kb<<8; double warm=0,cold=0; float s=0;
  for(int r=0;r<5;r++){ s+=sum(x,T); double t=now(); s+=sum(x+T-n,n); warm+=now()-t; s+=sum(z,T); t=now(); s+=sum(x+T-n,n); cold+=now()-t; }
  printf("last %d KB after a full read: %.1f GB/s; after reading another array: %.1f GB/s (%g)\n",mb,5*n*4/warm/1e9,5*n*4/cold/1e9,s); }
}
