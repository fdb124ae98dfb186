#include "silu_avx512.c"
#include <stdio.h>
#include <time.h>
#include <math.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
NK_SILU_TARGET static void old16(const uint16_t *s, uint16_t *d, size_t n, float p, float sc, float sh, int code, int st){
  const __m512 P=_mm512_set1_ps(p), S=_mm512_set1_ps(sc), T=_mm512_set1_ps(sh);
  for (size_t i=0;i<n;i+=16){ __m512 z=_mm512_fmadd_ps(_mm512_sub_ps(nk_e5_load(s,i,2),P),S,T); nk_e5_store(d,i,nk_s5_silu(z),code,st);} }
NK_SILU_TARGET static void new32(const uint16_t *s, uint16_t *d, size_t n, float p, float sc, float sh, int st){ nk_s5_affine(s,d,n,p,sc,sh,3,st); }
static uint16_t bf(float f){uint32_t u; memcpy(&u,&f,4); return u>>16;}
int main(){
  enum{N=1<<16};
  uint16_t *x=aligned_alloc(64,N*2+128),*a=aligned_alloc(64,N*2+128),*b=aligned_alloc(64,N*2+128),*c=aligned_alloc(64,N*2+128);
  float sp[]={0,-0.f,INFINITY,-INFINITY,NAN,-NAN,0x1p-140f,-0x1p-130f,0x1p-127f,-0x1.8p-129f,0x1.fep-127f,87.3f,-87.3f,87.4f,-87.4f,88.8f,-88.8f,1e30f,-1e30f,1,-1,0.5f,-0.5f};
  unsigned r=1; for(int i=0;i<N;i++){ r=r*1103515245u+12345u; float f=((int)(r>>8)%20000-10000)/300.f; x[i]=bf(f);} 
  for(int k=0;k<23;k++){ x[k*997%N]=bf(sp[k]); x[(k*131+5)%64]=bf(sp[k]); }
  int bad=0;
  float coef[2][3]={{0.25f,1.5f,-0.5f},{0,1,0}};
  for(int cc=0;cc<2;cc++) for(int st=0;st<2;st++) for(size_t n=16;n<=N;n=n*3+16){ size_t m=n/16*16;
    memset(a,0x55,N*2); memset(b,0x55,N*2); memset(c,0x55,N*2);
    old16(x+8,a+8,m,coef[cc][0],coef[cc][1],coef[cc][2],2,st);
    old16(x+8,b+8,m,coef[cc][0],coef[cc][1],coef[cc][2],3,st);
    new32(x+8,c+8,m,coef[cc][0],coef[cc][1],coef[cc][2],st); _mm_sfence();
    int ab=memcmp(a,b,N*2)!=0, ac=memcmp(a,c,N*2)!=0; if(ab||ac){bad++; printf("mismatch coef %d st %d n %zu: formula vs hw16 %d, formula vs pairs %d\n",cc,st,m,ab,ac);} }
  printf("checks done, %d bad\n",bad);
  // timing, cached 256-value runs
  for(int rep=0;rep<3;rep++){ double best[2]={1e9,1e9};
   for(int e=0;e<2;e++) for(int k=0;k<30;k++){ double t=now(); for(int o=0;o<N;o+=256){ if(e==0) old16(x+o,a+o,256,0.1f,1.3f,-0.2f,3,0); else new32(x+o,a+o,256,0.1f,1.3f,-0.2f,0);} double dd=now()-t; if(dd<best[e])best[e]=dd; }
   printf("16/step %.3f ns  32/step %.3f ns per value\n",best[0]/N*1e9,best[1]/N*1e9); }
  return bad;
}
