#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
#define N 128
#define C 64
#define HW 3136
static float *x;
static __m256 sumseg(const float*p,int n){__m256 a=_mm256_setzero_ps(),b=a,c=a,d=a;int i=0;for(;i+32<=n;i+=32){a=_mm256_add_ps(a,_mm256_loadu_ps(p+i));b=_mm256_add_ps(b,_mm256_loadu_ps(p+i+8));c=_mm256_add_ps(c,_mm256_loadu_ps(p+i+16));d=_mm256_add_ps(d,_mm256_loadu_ps(p+i+24));}for(;i+8<=n;i+=8)a=_mm256_add_ps(a,_mm256_loadu_ps(p+i));return _mm256_add_ps(_mm256_add_ps(a,b),_mm256_add_ps(c,d));}
static __m256 sumsegpf(const float*p,int n,const float*next,int dist){__m256 a=_mm256_setzero_ps(),b=a,c=a,d=a;int i=0;for(;i+32<=n;i+=32){int j=i+dist; const char*q= j<n? (const char*)(p+j):(const char*)(next+(j-n)); _mm_prefetch(q,_MM_HINT_T0);_mm_prefetch(q+64,_MM_HINT_T0);a=_mm256_add_ps(a,_mm256_loadu_ps(p+i));b=_mm256_add_ps(b,_mm256_loadu_ps(p+i+8));c=_mm256_add_ps(c,_mm256_loadu_ps(p+i+16));d=_mm256_add_ps(d,_mm256_loadu_ps(p+i+24));}for(;i+8<=n;i+=8)a=_mm256_add_ps(a,_mm256_loadu_ps(p+i));return _mm256_add_ps(_mm256_add_ps(a,b),_mm256_add_ps(c,d));}
static __m256 sumsegpf2(const float*p,int n,const float*next,int dist){__m256 a=_mm256_setzero_ps(),b=a,c=a,d=a;int i=0;for(;i+32<=n;i+=32){int j=i+dist; if(j>=n){const char*q=(const char*)(next+(j-n)); _mm_prefetch(q,_MM_HINT_T0);_mm_prefetch(q+64,_MM_HINT_T0);}a=_mm256_add_ps(a,_mm256_loadu_ps(p+i));b=_mm256_add_ps(b,_mm256_loadu_ps(p+i+8));c=_mm256_add_ps(c,_mm256_loadu_ps(p+i+16));d=_mm256_add_ps(d,_mm256_loadu_ps(p+i+24));}for(;i+8<=n;i+=8)a=_mm256_add_ps(a,_mm256_loadu_ps(p+i));return _mm256_add_ps(_mm256_add_ps(a,b),_mm256_add_ps(c,d));}
int main(int argc,char**argv){
  int mode=atoi(argv[1]); int dist=argc>2?atoi(argv[2]):0;
  size_t T=(size_t)N*C*HW; x=aligned_alloc(64,T*4); for(size_t i=0;i<T;i++)x[i]=i&7;
  double best=1e9; __m256 acc=_mm256_setzero_ps();
  for(int r=0;r<15;r++){double t=now();
   if(mode==0){ for(size_t u=0;u<(size_t)N*C;u++) acc=_mm256_add_ps(acc,sumseg(x+u*HW,HW)); }
   else if(mode==1){ for(int c=0;c<C;c++)for(int n=0;n<N;n++) acc=_mm256_add_ps(acc,sumseg(x+((size_t)n*C+c)*HW,HW)); }
   else if(mode==2){ for(int c=0;c<C;c++)for(int n=0;n<N;n++){ const float*nx = n+1<N? x+((size_t)(n+1)*C+c)*HW : (c+1<C? x+(size_t)(c+1)*HW : x); acc=_mm256_add_ps(acc,sumsegpf(x+((size_t)n*C+c)*HW,HW,nx,dist));} }
   else if(mode==3){ /* channel pairs: 2 channels contiguous per sample */ for(int c=0;c<C;c+=dist)for(int n=0;n<N;n++) acc=_mm256_add_ps(acc,sumseg(x+((size_t)n*C+c)*HW,HW*dist)); }
   else if(mode==4){ for(int c=0;c<C;c++)for(int n=0;n<N;n++){ const float*nx = n+1<N? x+((size_t)(n+1)*C+c)*HW : (c+1<C? x+(size_t)(c+1)*HW : x); acc=_mm256_add_ps(acc,sumsegpf2(x+((size_t)n*C+c)*HW,HW,nx,dist));} }
   else if(mode==5){ for(int c=0;c<C;c++)for(int n=0;n<N;n++){ const float*nx = n+1<N? x+((size_t)(n+1)*C+c)*HW : (c+1<C? x+(size_t)(c+1)*HW : x); for(int k=0;k<dist;k+=16)_mm_prefetch((const char*)(nx+k),_MM_HINT_T0); acc=_mm256_add_ps(acc,sumseg(x+((size_t)n*C+c)*HW,HW));} }
   else if(mode==6){ for(int c=0;c<C;c++)for(int n=0;n<N;n++){ const float*nx = n+1<N? x+((size_t)(n+1)*C+c)*HW : (c+1<C? x+(size_t)(c+1)*HW : x); for(int k=0;k<dist;k+=16)_mm_prefetch((const char*)(nx+k),_MM_HINT_T1); acc=_mm256_add_ps(acc,sumseg(x+((size_t)n*C+c)*HW,HW));} }
   t=now()-t; if(t<best)best=t;}
  float o[8];_mm256_storeu_ps(o,acc);
  printf("mode %d dist %d: %.3f ms  %.1f GB/s (%g)\n",mode,dist,best*1e3,T*4/best/1e9,o[0]);
}
