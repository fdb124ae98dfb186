#include "silu_avx512.c"
#include <stdio.h>
#include <time.h>
#include <math.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
NK_SILU_TARGET static void cols(const void*s,void*d,size_t R,size_t C,size_t S,const float*p,const float*q,const float*t,int e,int st){ if(e==3) nk_s5_columns(s,d,R,C,S,p,q,t,3,st); else nk_s5_columns(s,d,R,C,S,p,q,t,2,st);}
static uint16_t bf(float f){uint32_t u; memcpy(&u,&f,4); return u>>16;}
int main(){
  enum{N=1<<17};
  uint16_t *x=aligned_alloc(64,N*2+128),*a=aligned_alloc(64,N*2+128),*c=aligned_alloc(64,N*2+128);
  float *pv=malloc(4*2048),*sc=malloc(4*2048),*sh=malloc(4*2048);
  float sp[]={0,-0.f,INFINITY,-INFINITY,NAN,-NAN,0x1p-140f,-0x1p-130f,0x1p-127f,-0x1.8p-129f,0x1.fep-127f,87.3f,-87.3f,87.4f,-87.4f,88.8f,-88.8f,1e30f,-1e30f,1,-1,0.5f,-0.5f};
  unsigned r=1; for(int i=0;i<N;i++){ r=r*1103515245u+12345u; float f=((int)(r>>8)%20000-10000)/300.f; x[i]=bf(f);}
  for(int k=0;k<23;k++){ x[k*997%N]=bf(sp[k]); x[(k*131+5)%64]=bf(sp[k]); }
  for(int i=0;i<2048;i++){ r=r*1103515245u+12345u; pv[i]=((int)(r>>8)%2000-1000)/1000.f; sc[i]=((int)(r>>4)%8000-4000)/100.f; sh[i]=((int)(r>>12)%600-300)/100.f; if(i%7==3){pv[i]=0;sc[i]=1;sh[i]=0;} }
  int bad=0; size_t widths[]={16,32,37,48,64,96,130,320,1030};
  for(int k=0;k<9;k++) for(int st=0;st<2;st++){ size_t C=widths[k], R=(N-64)/(C+16); if(R>40)R=40;
    memset(a,0x55,N*2); memset(c,0x55,N*2);
    cols(x,a,R,C,(C+15)/8*8,pv,sc,sh,2,st); cols(x,c,R,C,(C+15)/8*8,pv,sc,sh,3,st); _mm_sfence();
    if(memcmp(a,c,N*2)){bad++; printf("mismatch cols %zu st %d\n",C,st);} }
  printf("column checks done, %d bad\n",bad);
  for(int rep=0;rep<3;rep++){ double best[2]={1e9,1e9}; size_t C=320, R=8;
   for(int e=0;e<2;e++) for(int k=0;k<30;k++){ double t=now(); for(int o=0;o+C*R<=N;o+=C*R) cols(x+o,a+o,R,C,C,pv,sc,sh,e?3:2,0); double dd=now()-t; if(dd<best[e])best[e]=dd; }
   printf("columns 320: formula %.3f ns  hw %.3f ns per value\n",best[0]/N*1e9,best[1]/N*1e9); }
  return bad;
}
