// Channel-order BatchNorm NCHW forward emulation, [N=128,C=64,HW=3136], 1 thread.
// Stats: 32 Welford lanes (4 ymm, the Swift loop's ops) per block = one run; output pass per channel
// (read x, y=(x-p)*s+t, streaming stores). Prefetch variants for the stats pass.
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include <time.h>
#include <immintrin.h>
static double now(void){struct timespec ts;clock_gettime(CLOCK_MONOTONIC,&ts);return ts.tv_sec+ts.tv_nsec*1e-9;}
enum{N=128,C=64,HW=3136};
static float wt[2*1024];
#define PF(p) __builtin_prefetch((p),0,2)
typedef struct { __m256 m[4], s[4]; } Lanes;

static inline __m256 ld(const void *p, size_t i, int E){
  if(E==4) return _mm256_loadu_ps((const float*)p+i);
  __m128i h=_mm_loadu_si128((const __m128i*)((const uint16_t*)p+i));
  if(E==1) return _mm256_cvtph_ps(h);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h),16));
}
static inline void wstep(__m256 x,__m256*m,__m256*s,__m256 r,__m256 q){
  __m256 d=_mm256_sub_ps(x,*m); *m=_mm256_fmadd_ps(*m,q,_mm256_mul_ps(x,r)); *s=_mm256_fmadd_ps(d,_mm256_sub_ps(x,*m),*s);
}
// one block (run) of length HW at p; prefetch: mode
// esz bytes per element. jump = element distance from this run to next run's start (stride or following)
// pf modes: 0 none; 1 current (min(len,8K/esz) ahead, next run); 2 8KiB bytes ahead (may go 2 runs); 3 two runs ahead same offset;
//           5 current + burst of first 16 lines of run+2 at start
__attribute__((noinline)) static Lanes block(const void *p, int E, int mode, ptrdiff_t jump, ptrdiff_t jump2){
  const int esz = E==4?4:2; const __m256 k=_mm256_set1_ps(0.5f);
  __m256 m0=_mm256_setzero_ps(),m1=m0,m2=m0,m3=m0,s0=m0,s1=m0,s2=m0,s3=m0;
  ptrdiff_t dist = 8192/esz; if(mode==1||mode==5||mode==6) dist = dist<HW?dist:HW;
  if(mode==5){ const char*b=(const char*)p+jump2*esz; for(int l=0;l<16;l++) PF(b+64*l); }
  const char *pc=(const char*)p;
  for(int c=0;c<HW/32;c++){
    ptrdiff_t i=32*c;
    if(mode==1||mode==2||mode==5){ ptrdiff_t t=i+dist; const char*q; if(t<HW) q=pc+t*esz; else if(t<2*HW) q=pc+(jump+t-HW)*esz; else q=pc+(jump2+t-2*HW)*esz;
      PF(q); if(esz==4) PF(q+64);}
    else if(mode==3){ const char*q=pc+(jump2+i)*esz; PF(q); if(esz==4) PF(q+64);}
    if(mode==6){ // plain sums (no Welford), the current prefetch: the memory side alone
      ptrdiff_t t=i+dist; const char*q = t<HW? pc+t*esz : pc+(jump+t-HW)*esz; PF(q); if(esz==4) PF(q+64);
      m0=_mm256_add_ps(m0,ld(p,i,E)); m1=_mm256_add_ps(m1,ld(p,i+8,E)); m2=_mm256_add_ps(m2,ld(p,i+16,E)); m3=_mm256_add_ps(m3,ld(p,i+24,E));
      continue; }
    __m256 r=_mm256_set1_ps(wt[2*(c+1)]), w=_mm256_set1_ps(wt[2*(c+1)+1]);
    wstep(_mm256_sub_ps(ld(p,i,E),k),&m0,&s0,r,w);
    wstep(_mm256_sub_ps(ld(p,i+8,E),k),&m1,&s1,r,w);
    wstep(_mm256_sub_ps(ld(p,i+16,E),k),&m2,&s2,r,w);
    wstep(_mm256_sub_ps(ld(p,i+24,E),k),&m3,&s3,r,w);
  }
  Lanes L; L.m[0]=m0;L.m[1]=m1;L.m[2]=m2;L.m[3]=m3;L.s[0]=s0;L.s[1]=s1;L.s[2]=s2;L.s[3]=s3;
  return L;
}
// two blocks interleaved (runs a and b), prefetch each 2 runs ahead at same offset (mode 4)
typedef struct{Lanes a,b;} L2x;
__attribute__((noinline)) static L2x block2(const void *pa,const void*pb,int E,ptrdiff_t ja,ptrdiff_t jb){
  const int esz=E==4?4:2; const __m256 k=_mm256_set1_ps(0.5f);
  __m256 a0=_mm256_setzero_ps(),a1=a0,a2=a0,a3=a0,c0=a0,c1=a0,c2=a0,c3=a0,b0=a0,b1=a0,b2=a0,b3=a0,d0=a0,d1=a0,d2=a0,d3=a0;
  const char*ca=(const char*)pa,*cb=(const char*)pb;
  for(int c=0;c<HW/32;c++){ ptrdiff_t i=32*c;
    PF(ca+(ja+i)*esz); PF(cb+(jb+i)*esz); if(esz==4){PF(ca+(ja+i)*esz+64);PF(cb+(jb+i)*esz+64);}
    __m256 r=_mm256_set1_ps(wt[2*(c+1)]), w=_mm256_set1_ps(wt[2*(c+1)+1]);
    wstep(_mm256_sub_ps(ld(pa,i,E),k),&a0,&c0,r,w); wstep(_mm256_sub_ps(ld(pa,i+8,E),k),&a1,&c1,r,w);
    wstep(_mm256_sub_ps(ld(pa,i+16,E),k),&a2,&c2,r,w); wstep(_mm256_sub_ps(ld(pa,i+24,E),k),&a3,&c3,r,w);
    wstep(_mm256_sub_ps(ld(pb,i,E),k),&b0,&d0,r,w); wstep(_mm256_sub_ps(ld(pb,i+8,E),k),&b1,&d1,r,w);
    wstep(_mm256_sub_ps(ld(pb,i+16,E),k),&b2,&d2,r,w); wstep(_mm256_sub_ps(ld(pb,i+24,E),k),&b3,&d3,r,w);
  }
  L2x o; o.a.m[0]=a0;o.a.m[1]=a1;o.a.m[2]=a2;o.a.m[3]=a3;o.a.s[0]=c0;o.a.s[1]=c1;o.a.s[2]=c2;o.a.s[3]=c3;
  o.b.m[0]=b0;o.b.m[1]=b1;o.b.m[2]=b2;o.b.m[3]=b3;o.b.s[0]=d0;o.b.s[1]=d1;o.b.s[2]=d2;o.b.s[3]=d3; return o;
}
__attribute__((noinline)) static void outpass(const void*x,void*y,int E,size_t ch){
  const __m256 p=_mm256_set1_ps(0.1f),s=_mm256_set1_ps(1.1f),t=_mm256_set1_ps(0.2f);
  for(int n=0;n<N;n++){ size_t off=((size_t)n*C+ch)*HW;
    for(int i=0;i<HW;i+=8){ __m256 v=_mm256_fmadd_ps(_mm256_sub_ps(ld(x,off+i,E),p),s,t);
      if(E==4) _mm256_stream_ps((float*)y+off+i,v);
      else { __m128i h = E==1? _mm256_cvtps_ph(v,0) : _mm_packus_epi32(_mm_srli_epi32(_mm256_castsi256_si128(_mm256_castps_si256(v)),16),_mm_srli_epi32(_mm256_extracti128_si256(_mm256_castps_si256(v),1),16));
        _mm_stream_si128((__m128i*)((uint16_t*)y+off+i),h);} } }
}
static float sink;
static int floors(void){
  for(int k=1;k<1024;k++){wt[2*k]=1.f/k;wt[2*k+1]=1-1.f/k;}
  size_t tot=(size_t)N*C*HW;
  float*xf=aligned_alloc(4096,tot*4); uint16_t*xh=aligned_alloc(4096,tot*2);
  for(size_t i=0;i<tot;i++){xf[i]=(float)(i%97)*0.01f; xh[i]=0x3f80+(i%13);}
  char*junk=malloc(64<<20);
  for(int rep=0;rep<5;rep++) for(int E=2;E<=4;E+=2){ int esz=E==4?4:2; const char*x=E==4?(const char*)xf:(const char*)xh;
    double t0=now(); for(int b=0;b<N*C;b++){ Lanes l=block(x+(b%2)*HW*esz,E,0,0,0); sink+=l.m[0][0]; } double hot=now()-t0;
    memset(junk,rep,64<<20);
    t0=now(); for(int b=0;b<N*C;b++){ Lanes l=block(x+(size_t)b*HW*esz,E,0,0,0); sink+=l.m[0][0]; } double mem=now()-t0;
    memset(junk,rep,64<<20);
    t0=now(); for(int b=0;b<N*C;b++){ Lanes l=block(x+(size_t)b*HW*esz,E,1,HW,2*HW); sink+=l.m[0][0]; } double mempf=now()-t0;
    printf("rep %d %s hot(L1/L2) %.2f ms  memory-order %.2f ms (%.1f GB/s) memory-order+pf %.2f ms (%.1f GB/s)\n",rep,E==4?"f32":"bf16",hot*1e3,mem*1e3,tot*esz/mem/1e9,mempf*1e3,tot*esz/mempf/1e9);
  }
  return sink==1.5f;
}

static void run(const void*x,void*y,int E,int mode,int out,double*ts,double*to){
  const int esz=E==4?4:2; (void)esz; double st=0,ot=0;
  for(size_t ch=0;ch<C;ch++){ double t0=now();
    if(mode==4){ for(int n=0;n<N;n+=2){ size_t off=((size_t)n*C+ch)*HW; const char*pa=(const char*)x+off*esz,*pb=pa+(size_t)C*HW*esz;
        ptrdiff_t j2=2*(ptrdiff_t)C*HW; if(n+2>=N) j2 = (ptrdiff_t)HW - (ptrdiff_t)n*C*HW; // next channel first runs
        L2x l=block2(pa,pb,E,j2,j2); sink+=l.a.m[0][0]+l.b.s[1][0]; } }
    else for(int n=0;n<N;n++){ size_t off=((size_t)n*C+ch)*HW; ptrdiff_t jump = n+1<N? (ptrdiff_t)C*HW : (ptrdiff_t)HW-(ptrdiff_t)n*C*HW;
      ptrdiff_t jump2 = n+2<N? 2*(ptrdiff_t)C*HW : (n+1<N? (ptrdiff_t)HW-(ptrdiff_t)n*C*HW : jump + (ptrdiff_t)C*HW);
      Lanes l=block((const char*)x+off*esz,E,mode,jump,jump2); sink+=l.m[0][0]+l.s[3][0]; }
    double t1=now(); st+=t1-t0;
    if(out){ outpass(x,y,E,ch); ot+=now()-t1; } }
  *ts=st;*to=ot;
}
int main_(int argc,char**argv);
int main(int argc,char**argv){ if(argc>2){ return floors(); } return main_(argc,argv);}
int main_(int argc,char**argv){
  for(int k=1;k<1024;k++){wt[2*k]=1.f/k;wt[2*k+1]=1-1.f/k;}
  size_t tot=(size_t)N*C*HW; int reps=argc>1?atoi(argv[1]):3;
  float*xf=aligned_alloc(4096,tot*4),*yf=aligned_alloc(4096,tot*4); uint16_t*xh=aligned_alloc(4096,tot*2),*yh=aligned_alloc(4096,tot*2);
  for(size_t i=0;i<tot;i++){xf[i]=(float)(i%97)*0.01f; xh[i]=0x3f80+(i%13);} memset(yf,0,tot*4);memset(yh,0,tot*2);
  char*junk=malloc(64<<20);
  int modes[]={0,1,2,3,4,5,6};
  for(int rep=0;rep<reps;rep++) for(int out=1;out<2;out++){
    for(int E=2;E<=4;E+=2) for(int mi=0;mi<7;mi++){ int mode=modes[mi]; if(E==4&&mode!=1&&mode!=4&&mode!=6) continue;
      memset(junk,rep,64<<20); double ts,to;
      run(E==4?(void*)xf:(void*)xh,E==4?(void*)yf:(void*)yh,E,mode,out,&ts,&to);
      double bytes=(double)tot*(E==4?4:2);
      printf("rep %d out %d %s mode %d stats %.3f ms (%.1f GB/s) out %.3f ms total %.3f\n",rep,out,E==4?"f32 ":"bf16",mode,ts*1e3,bytes/ts/1e9,to*1e3,(ts+to)*1e3);
    }}
  return sink==1.2345f;
}
