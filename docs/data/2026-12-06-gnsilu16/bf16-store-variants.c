#include "silu_avx512.c"
#include <stdio.h>
#include <time.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
#define N (655360)
#define RUN 256
typedef void (*loop)(const uint16_t*, uint16_t*, size_t, float, float, float);
NK_SILU_TARGET void v_current(const uint16_t *s, uint16_t *d, size_t n, float p, float sc, float sh){ nk_s5_affine(s,d,n,p,sc,sh,3,0); }
NK_SILU_TARGET void v_nocheck(const uint16_t *s, uint16_t *d, size_t n, float p, float sc, float sh){
  const __m512 P=_mm512_set1_ps(p), S=_mm512_set1_ps(sc), T=_mm512_set1_ps(sh);
  for (size_t i=0;i<n;i+=16){ __m512 z=_mm512_fmadd_ps(_mm512_sub_ps(nk_s5_load(s,i,2),P),S,T);
    _mm256_storeu_si256((__m256i*)(d+i),(__m256i)_mm512_cvtneps_pbh(nk_s5_silu(z))); } }
NK_SILU_TARGET void v_unpack(const uint16_t *s, uint16_t *d, size_t n, float p, float sc, float sh){
  const __m512 P=_mm512_set1_ps(p), S=_mm512_set1_ps(sc), T=_mm512_set1_ps(sh);
  const __m512i order=_mm512_setr_epi64(0,4,1,5,2,6,3,7);
  for (size_t i=0;i<n;i+=32){ __m512i w=_mm512_loadu_si512(s+i);
    __m512 lo=_mm512_castsi512_ps(_mm512_unpacklo_epi16(_mm512_setzero_si512(),w));
    __m512 hi=_mm512_castsi512_ps(_mm512_unpackhi_epi16(_mm512_setzero_si512(),w));
    __m512 a=nk_s5_silu(_mm512_fmadd_ps(_mm512_sub_ps(lo,P),S,T)), b=nk_s5_silu(_mm512_fmadd_ps(_mm512_sub_ps(hi,P),S,T));
    if (__builtin_expect((_mm512_fpclass_ps_mask(a,0x20)|_mm512_fpclass_ps_mask(b,0x20))!=0,0)) { nk_s5_store(d,i,a,2,0); nk_s5_store(d,i+16,b,2,0); continue; } // (wrong order; timing only)
    __m512i r=(__m512i)_mm512_cvtne2ps_pbh(b,a);
    _mm512_storeu_si512(d+i,_mm512_permutexvar_epi64(order,r)); } }
NK_SILU_TARGET void v_f32(const uint16_t *s, uint16_t *d, size_t n, float p, float sc, float sh){ nk_s5_affine(s,d,n,p,sc,sh,0,0); }
int main(){
  uint16_t *xb = aligned_alloc(64, N*4), *yb = aligned_alloc(64, N*4);
  for (int i=0;i<2*N;i++){ float f=(float)((i*7919)%1000)/250.f-2.f; uint32_t u; __builtin_memcpy(&u,&f,4); xb[i]=u>>16; }
  loop L[]={v_f32, v_current, v_nocheck, v_unpack}; const char *name[]={"f32","bf16 current","bf16 nocheck","bf16 unpack"};
  for (int e=0;e<4;e++){ double best=1e9;
    for (int rep=0; rep<40; rep++){ double t=now();
      for (int r=0;r<N;r+=RUN) L[e](xb+(e==0?2*r:r), yb+(e==0?2*r:r), RUN, 0.1f,1.3f,-0.2f);
      double dd=now()-t; if(dd<best)best=dd; }
    printf("%-14s %.3f ms  %.3f ns/elem\n", name[e], best*1e3, best/N*1e9); }
  // check unpack order
  v_current(xb,yb,256,0.1f,1.3f,-0.2f); uint16_t ref[256]; for(int i=0;i<256;i++)ref[i]=yb[i];
  v_unpack(xb,yb,256,0.1f,1.3f,-0.2f); int bad=0; for(int i=0;i<256;i++) bad+=ref[i]!=yb[i]; printf("unpack mismatches %d\n",bad);
}
